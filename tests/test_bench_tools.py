"""The compile-time and parser-comparison benchmarks run on tiny inputs, so that neither rots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import compile_time, parse_compare


@pytest.mark.slow
def test_compile_time_reports_cold_and_warm(capsys) -> None:
    assert compile_time.main(["--", "--n-epochs", "1", "--n-factors", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    cold = out.split("cold:")[1].split("warm:")[0]
    warm = out.split("warm:")[1]
    assert "training" in cold and "sorting" in cold  # compiles counted per kernel group
    assert "; 0 compiles" not in cold.splitlines()[0]
    assert "; 0 compiles" in warm.splitlines()[0]  # everything came from the cache
    assert ", 0 loads from" in cold.splitlines()[0]


def test_compile_groups_sum_per_module() -> None:
    compiles = [
        ("fastmf._kernels.sorting.gather__serial", "(int32,)", 0.5, False),
        ("fastmf._kernels.sorting.gather__serial", "(float32,)", 0.25, False),
        ("fastmf._kernels.training.sgd_epoch", "(...)", 2.0, False),
    ]
    assert compile_time.groups(compiles) == {"training": (1, 2.0), "sorting": (2, 0.75)}


@pytest.mark.slow
def test_parse_compare_reads_the_same_columns(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    z = tmp_path / "twin.npz"
    np.savez(
        z,
        user=rng.integers(0, 50, n).astype(np.int32),
        item=rng.integers(0, 80, n).astype(np.int32),
        rating=(rng.integers(1, 11, n) / 2).astype(np.float32),
    )
    csv = tmp_path / "ratings.csv"
    assert parse_compare.main([str(csv), "--write-twin", str(z), "--readers", "fastmf,pandas"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"{n:,} rows") == 2 and "DIFFERENT" not in out
    assert csv.read_text().splitlines()[0] == "userId,movieId,rating,timestamp"
