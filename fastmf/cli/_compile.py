"""The compile notice of a first run: Numba compiles fastmf's kernels once, then loads them."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fastmf.train.params import Params

# `python -m benchmarks.compile_time` on a 2-core Xeon: a cold `fastmf train --n-epochs 2`
# takes 11.8 s at load 3.6 (7.2 s of CPU compiling: the setup kernels about 4 s, the epoch
# kernel 2 s, compiled here or by a child when a core is spare) and 1.8-2.5 s once the cache is
# filled; the epochs themselves take a fraction of a second.
_COMPILE_SECONDS = 10


def announce_compile(params: Params, ratings: Any = None) -> None:
    """Say on stderr that the kernels compile now, when Numba's cache holds no compiled training
    kernel for this dtype and width (the first run, or the first after fastmf's kernels
    changed), and start compiling the epoch kernel in a child process meanwhile
    (``cli._prefill``) when a core is spare (``spare_core``; never with
    ``FASTMF_COMPILE_CHILD=0``). ``ratings`` (with "user" and "item" columns) tell an "auto"
    width."""
    width = fit_width(params, ratings)
    if width is not None:
        params = dataclasses.replace(params, n_factors=width)
    if kernels_cached(params):
        return
    print(
        f"fastmf: compiling fastmf's kernels (first run only, about {_COMPILE_SECONDS} s)",
        file=sys.stderr,
        flush=True,
    )
    child = os.environ.get("FASTMF_COMPILE_CHILD", "1") != "0"  # "0": compile in this process
    if width is not None and child and spare_core():
        from fastmf.cli import _prefill

        _prefill.start(_epoch_kernel(params), width, params.dtype)


def spare_core() -> bool:
    """Whether a core is idle besides this process's (the load average over the last minute is
    below the cores less one): a child compiling beside it gains only then, and otherwise adds
    its start-up to the CPU the others are waiting for."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 1
    except OSError:  # no load average on this system
        return False


def fit_width(params: Params, ratings: Any = None) -> int | None:
    """The factor width the fit will have: ``n_factors``, or for "auto" the data-aware value of
    these ratings' counts (None without them)."""
    if isinstance(params.n_factors, int):
        return params.n_factors
    try:
        from fastmf.train.defaults import data_defaults

        users, items = ratings["user"].value_counts(), ratings["item"].value_counts()
        return int(data_defaults(len(ratings), users.to_numpy(), items.to_numpy())["n_factors"])
    except Exception:  # noqa: BLE001 - no ratings, or not a frame of them: the fit will tell
        return None


def kernels_cached(params: Params) -> bool:
    """Whether Numba's on-disk cache has the epoch kernel this fit runs, compiled for its dtype
    and factor width (each width has a kernel of its own), and matching the kernel's current
    source. With ``n_factors="auto"`` any width "auto" can choose counts. True when it cannot
    tell (nothing is announced)."""
    try:
        from fastmf.cli._prefill import epoch_kernel
        from fastmf.train.defaults import _FACTORS

        kernel = epoch_kernel(_epoch_kernel(params))
        width = params.n_factors
        widths = [width] if isinstance(width, int) else list(_FACTORS)
        return any(_cached(kernel.for_width(k, params.dtype), params.dtype) for k in widths)
    except Exception:  # noqa: BLE001 - another Numba, or the kernel changed: cannot tell
        return True


def _epoch_kernel(params: Params) -> str:
    per_rating = params.batch_size == 1 and params.optimizer == "sgd"  # "auto" resolved
    return "sgd_epoch" if per_rating else "batch_epoch"


def _cached(dispatcher, dtype: str) -> bool:
    """Whether the dispatcher's cache index holds a compile for ``dtype`` (of its scalar mu)."""
    index = dispatcher._cache._cache_file._load_index()  # {} when missing or stale
    at = list(inspect.signature(dispatcher.py_func).parameters).index("mu")
    return any(str(key[0][at]) == str(np.dtype(dtype)) for key in index)
