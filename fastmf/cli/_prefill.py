"""A first run's epoch kernel compiled in a child process while this one compiles the setup kernels.

On a cold cache ``fastmf train`` compiles the setup kernels (codes, sorts, the block layout) and
then the epoch kernel, one after the other: Numba compiles one function at a time in a process.
Numba's cache is a set of files, safe to fill from several processes, so a child compiles the
epoch kernel for the fit's width and dtype into it meanwhile, on the second core, and the fit's
first epoch loads it from there. The fit waits for the child (at most ``WAIT_SECONDS``) only when
it reaches the epoch first. If the child fails, is slow or guessed another signature, the fit
compiles the kernel itself, as it would have without the child: the result is the same.
The child is stopped when this process exits, and is told to stop if this one dies (Linux).
``FASTMF_COMPILE_CHILD=0`` turns the child off (``cli._compile.announce_compile``).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

WAIT_SECONDS = 120.0  # the longest a fit waits for the child before compiling the kernel itself

# The epoch kernels' argument types as ``train.epoch`` passes them: arrays of "i4", "i8", "f4",
# "f8" or "dt" (the model's dtype) with that many dimensions, or scalars ("dt", "i8", "bool").
# The ratings' values are float32 whatever the model's dtype.
_SGD = "i4:1 i4:1 f4:1 i8:1 i8:1 i8:1 i8:2 i4:2 dt dt:1 dt:1 dt:2 dt:2 dt dt dt bool f8:2"
_BATCH = (
    "i4:1 i4:1 f4:1 i8:1 i8:1 i8:1 i8:2 i4:2 i8 dt dt:1 dt:1 dt:2 dt:2 dt dt dt bool i8 "
    "dt:3 i8:1 dt:3 i8:1 dt:3 dt:3 i4:3 i4:1 dt:3 dt:3 i4:3 i4:1 f8:2"
)


def epoch_kernel(kernel: str) -> Any:
    """The epoch kernel named ``kernel``: "sgd_epoch" (per-rating) or "batch_epoch"."""
    from fastmf._kernels import minibatch, training

    return {"sgd_epoch": training.sgd_epoch, "batch_epoch": minibatch.batch_epoch}[kernel]


def signature(kernel: str, dtype: str) -> tuple:
    """Numba's argument types of ``kernel`` ("sgd_epoch" or "batch_epoch") for ``dtype``."""
    import numba

    names = {"dt": np.dtype(dtype).str[1:], "i4": "i4", "i8": "i8", "f4": "f4", "f8": "f8"}
    out: list[Any] = []
    for spec in (_SGD if kernel == "sgd_epoch" else _BATCH).split():
        kind, _, ndim = spec.partition(":")
        if kind == "bool":
            out.append(numba.types.boolean)
        elif ndim:
            array = np.zeros((1,) * int(ndim), dtype=names[kind])
            out.append(numba.typeof(array))
        else:
            out.append(numba.typeof(np.zeros(1, dtype=names[kind])[0]))
    return tuple(out)


def start(kernel: str, width: int, dtype: str) -> subprocess.Popen | None:
    """Start the child compiling ``kernel``'s variant for rows of ``width`` factors of ``dtype``
    into Numba's cache, and have that variant's first call wait for it. None when the child
    cannot be started (nothing changes then)."""
    root = str(Path(__file__).resolve().parents[2])  # the fastmf this process imported
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if env.get("NUMBA_CACHE_DIR"):  # the child runs in ``root``: the same folder from there
        env["NUMBA_CACHE_DIR"] = os.path.abspath(env["NUMBA_CACHE_DIR"])
    code = "import sys; from fastmf.cli._prefill import child; child(*sys.argv[1:])"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, kernel, str(width), dtype, str(os.getpid())],
            env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError:
        return None
    atexit.register(stop, proc)
    dispatch = epoch_kernel(kernel)
    dispatch.expect(dispatch.key(width, dtype), lambda: _wait(proc))
    return proc


def _wait(proc: subprocess.Popen) -> None:
    """Wait for the child at most ``WAIT_SECONDS``, then stop it (the fit compiles alone)."""
    try:
        proc.wait(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End the child if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _die_with_parent(parent: int) -> None:
    """SIGTERM to this process when its parent dies (Linux's PR_SET_PDEATHSIG), and exit now if
    the parent is already gone."""
    if sys.platform == "linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        sys.exit(0)


def child(kernel: str, width: str, dtype: str, parent: str) -> None:
    """The child's work: compile the variant (Numba saves it to the cache) and exit."""
    _die_with_parent(int(parent))
    dispatch = epoch_kernel(kernel).for_width(int(width), dtype)
    dispatch.compile(signature(kernel, dtype))
