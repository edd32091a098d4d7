"""The first-run compile notice: shown when the epoch kernel a run needs is not in Numba's cache."""

from __future__ import annotations

import dataclasses

from fastmf import MatrixFactorization
from fastmf.cli import build_parser, main
from fastmf.cli import train as train_cli
from fastmf.cli._compile import kernels_cached


def test_the_default_optimizer_is_resolved_before_the_cache_is_asked():
    """``--optimizer auto`` at batch size 1 trains with the per-rating kernel: after a run has
    compiled (or loaded) it, the same command line is not told that it will compile."""
    argv = ["train", "--n-epochs", "1", "--n-factors", "4", "--quiet"]
    assert main(argv) == 0
    params = train_cli._estimator_params(build_parser().parse_args(argv))
    assert params["optimizer"] == "auto" and params["batch_size"] == 1
    assert kernels_cached(MatrixFactorization(**params)._check_params())


def test_a_kernel_never_compiled_for_this_dtype_is_not_cached():
    params = dataclasses.replace(MatrixFactorization()._check_params(), dtype="float16")
    assert not kernels_cached(params)
