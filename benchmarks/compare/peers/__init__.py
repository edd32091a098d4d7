"""Each library the runner compares, one module a library over the shared harness
(``harness.py``, whose docstring gives the protocol every peer follows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.compare.machine import package_version
from benchmarks.compare.peers.cornac_peer import run_cornac
from benchmarks.compare.peers.fastmf_peer import run_fastmf
from benchmarks.compare.peers.harness import Context, biased_predict, rss_gb
from benchmarks.compare.peers.lenskit_peer import run_lenskit
from benchmarks.compare.peers.libmf_peer import run_libmf
from benchmarks.compare.peers.skrecsys_peer import run_skrecsys
from benchmarks.compare.peers.surprise_peer import run_surprise
from benchmarks.compare.peers.torch_peer import run_torch

__all__ = ["PEERS", "Context", "Peer", "biased_predict", "rss_gb"]


@dataclass(frozen=True)
class Peer:
    """A library the runner can compare, how to tell it is installed and how to run it."""

    name: str
    label: str
    module: str
    dist: str
    run: Callable[[Context], dict]
    install: str
    build_libmf: bool = False
    time_budget: float | None = None  # seconds; None: the run's --time-budget

    def version(self) -> str | None:
        return package_version(self.dist)


def _p(fn, **kw):
    return lambda ctx: fn(ctx, **kw)


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("fastmf", "fastmf (defaults)", "fastmf", "fastmf", run_fastmf, "pip install -e ."),
        Peer(
            "fastmf-sgd",
            "fastmf (batch_size=1)",
            "fastmf",
            "fastmf",
            _p(run_fastmf, batch_size=1),
            "pip install -e .",
        ),
        Peer(
            "fastmf-b1024",
            "fastmf (batch_size=1024, row_adagrad)",
            "fastmf",
            "fastmf",
            _p(run_fastmf, batch_size=1024, optimizer="row_adagrad", learning_rate=0.2),
            "pip install -e .",
        ),
        Peer(
            "libmf-avx",
            "LIBMF (-O3 -march=native AVX OpenMP)",
            "libmf",
            "libmf",
            _p(run_libmf, avx=True),
            "pip install libmf (and a C++ compiler)",
            True,
        ),
        Peer("libmf", "LIBMF (pip libmf)", "libmf", "libmf", run_libmf, "pip install libmf"),
        Peer(
            "surprise",
            "Surprise SVD",
            "surprise",
            "scikit-surprise",
            run_surprise,
            "pip install scikit-surprise",
        ),
        Peer("cornac", "cornac MF", "cornac", "cornac", run_cornac, "pip install cornac"),
        Peer(
            "torch-b1024",
            "PyTorch Adam, batch 1024",
            "torch",
            "torch",
            run_torch,
            "pip install torch==2.13.0",
        ),
        Peer(
            "torch-sparse-b100k",
            "PyTorch SparseAdam, batch 100k",
            "torch",
            "torch",
            _p(run_torch, batch_size=100_000, sparse=True),
            "pip install torch==2.13.0",
        ),
        Peer(
            "lenskit",
            "LensKit biased MF (ALS)",
            "lenskit",
            "lenskit",
            run_lenskit,
            "pip install lenskit (needs pandas<3)",
        ),
        Peer(
            "skrecsys",
            "skrecsys AlternatingLeastSquares (ALS)",
            "skrecsys",
            "skrecsys",
            run_skrecsys,
            "pip install skrecsys (Python >= 3.11, numpy >= 2.4.6, scikit-learn >= 1.9.1)",
            time_budget=900.0,
        ),
    )
}
