"""The compile notice of a first run: Numba compiles fastmf's kernels once, then loads them."""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastmf.train.params import Params

# `python -m benchmarks.compile_time` on a 2-core Xeon (load 0.6): a cold `fastmf train
# --n-epochs 2` spends 15.3 s of CPU compiling (17-20 s in all, 1.8-2.2 s once the cache is
# filled); the epochs themselves take a fraction of a second.
_COMPILE_SECONDS = 20


def announce_compile(params: Params) -> None:
    """Say on stderr that the kernels compile now, when Numba's cache holds no compiled training
    kernel for this dtype (the first run, or the first after fastmf's kernels changed)."""
    if kernels_cached(params):
        return
    print(
        f"fastmf: compiling fastmf's kernels (first run only, about {_COMPILE_SECONDS} s)",
        file=sys.stderr,
        flush=True,
    )


def kernels_cached(params: Params) -> bool:
    """Whether Numba's on-disk cache has the epoch kernel this fit runs, compiled for its dtype
    and factor width (each width has a kernel of its own), and matching the kernel's current
    source. With ``n_factors="auto"`` the width is known at fit only: any width "auto" can
    choose counts. True when it cannot tell (nothing is announced)."""
    try:
        from fastmf._kernels import training as _kernels
        from fastmf.train.defaults import _FACTORS

        per_rating = params.batch_size == 1 and params.optimizer == "sgd"  # "auto" resolved
        kernel = _kernels.sgd_epoch if per_rating else _kernels.batch_epoch
        widths = [params.n_factors] if isinstance(params.n_factors, int) else list(_FACTORS)
        return any(_cached(kernel.for_width(k, params.dtype), params.dtype) for k in widths)
    except Exception:  # noqa: BLE001 - another Numba, or the kernel changed: cannot tell
        return True


def _cached(dispatcher, dtype: str) -> bool:
    """Whether the dispatcher's cache index holds a compile for ``dtype`` (of its scalar mu)."""
    index = dispatcher._cache._cache_file._load_index()  # {} when missing or stale
    at = list(inspect.signature(dispatcher.py_func).parameters).index("mu")
    return any(str(key[0][at]) == str(np.dtype(dtype)) for key in index)
