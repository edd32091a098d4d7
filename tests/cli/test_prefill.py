"""The child that compiles a first run's epoch kernel into Numba's cache: the signature it compiles
is the one a fit calls, the fit then loads it, and a failed or stuck child changes nothing."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization
from fastmf._kernels import minibatch, training
from fastmf.cli import _prefill


def _ratings(n_users=40, n_items=30, n=600, seed=5):
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(n_users * n_items)[:n]
    return pd.DataFrame({"user": pairs // n_items, "item": pairs % n_items,
                         "rating": rng.integers(1, 6, n).astype(float)})  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size,optimizer", [(1, "sgd"), (8, "adam")])
def test_the_child_compiles_the_signature_a_fit_calls(dtype, batch_size, optimizer):
    settings = dict(n_factors=6, n_epochs=1, dtype=dtype, n_jobs=1, verbose=0, random_state=0)
    MatrixFactorization(batch_size=batch_size, optimizer=optimizer, **settings).fit(_ratings())
    name = "sgd_epoch" if batch_size == 1 else "batch_epoch"
    kernels = {"sgd_epoch": training.sgd_epoch, "batch_epoch": minibatch.batch_epoch}
    variant = kernels[name].for_width(6, dtype)
    assert _prefill.signature(name, dtype) in variant.signatures


def test_the_kernel_the_child_compiled_is_loaded_from_the_cache(tmp_path, monkeypatch):
    import numba

    from fastmf._kernels import jit

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))  # the child's cache
    proc = _prefill.start("sgd_epoch", 4, "float32")
    assert proc is not None
    assert proc.wait(timeout=600) == 0
    assert training.sgd_epoch._pending.pop(0) is not None  # the fit would have waited first
    # a dispatcher of the same kernel in this process, reading that cache, loads the compile
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    fresh = jit.WidthKernel(
        training.sgd_epoch.py_func, {"parallel": True, **jit.JIT}, training.SGD_UNROLLED
    ).for_width(4, "float32")
    fresh.compile(_prefill.signature("sgd_epoch", "float32"))
    assert sum(fresh._cache_hits.values()) == 1
    assert not sum(fresh._cache_misses.values())


def test_a_failed_child_leaves_the_fit_to_compile(tmp_path, monkeypatch):
    monkeypatch.setattr(_prefill.sys, "executable", "/bin/false")
    proc = _prefill.start("sgd_epoch", 5, "float64")
    assert proc is not None
    model = MatrixFactorization(n_factors=5, n_epochs=1, dtype="float64", n_jobs=1, verbose=0)
    model.fit(_ratings())  # the first epoch waits for the child, which failed, and goes on
    assert proc.returncode == 1
    assert 0 not in training.sgd_epoch._pending
    assert np.isfinite(model.user_factors_).all()


def test_a_stuck_child_is_stopped(tmp_path, monkeypatch):
    stuck = tmp_path / "stuck"
    stuck.write_text("#!/bin/sh\nexec sleep 60\n")
    stuck.chmod(0o755)
    monkeypatch.setattr(_prefill.sys, "executable", str(stuck))
    monkeypatch.setattr(_prefill, "WAIT_SECONDS", 0.5)
    proc = _prefill.start("sgd_epoch", 5, "float64")
    assert proc is not None
    MatrixFactorization(n_factors=5, n_epochs=1, dtype="float64", n_jobs=1, verbose=0).fit(
        _ratings()
    )
    assert proc.poll() is not None  # killed and reaped after the wait ran out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_ends_when_its_parent_dies(tmp_path):
    """A parent killed without running its exit handlers leaves no child compiling behind."""
    import os
    import subprocess
    import time

    code = (
        "import os, sys, time; from fastmf.cli import _prefill\n"
        "proc = _prefill.start('sgd_epoch', 3, 'float64')\n"
        "print(proc.pid, flush=True); time.sleep(1.0); os._exit(0)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert not list(tmp_path.rglob("training.sgd_epoch__any-*.nbi"))  # stopped before it wrote


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie awaiting its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
