"""The batch benchmarks (``benchmarks/batch_defaults.py``, ``benchmarks/batch_speed.py``) run on a
tiny stand-in for a twin, so that neither can rot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import batch_defaults, batch_speed


@pytest.fixture
def tiny_twin(tmp_path, monkeypatch):
    """A file shaped like the ML-25M twins (user, item, rating, n_train, n_users, n_items)."""
    rng = np.random.default_rng(0)
    keys = rng.choice(200 * 150, 6000, replace=False)
    np.savez(
        tmp_path / "synth_1M.npz",
        user=(keys // 150).astype(np.int32),
        item=(keys % 150).astype(np.int32),
        rating=(rng.integers(1, 11, 6000) / 2).astype(np.float32),
        n_train=5400,
        n_users=200,
        n_items=150,
    )
    monkeypatch.setenv("FASTMF_TWIN_DIR", str(tmp_path))
    return tmp_path


def test_batch_defaults_sweep_writes_its_table_and_figures(tiny_twin, capsys):
    out = tiny_twin / "results"
    batch_defaults.main(
        ["--data", "1M", "--batch-sizes", "64", "--rates", "0.1", "--damped", "0.06",
         "--plain", "0.03", "--epochs", "2", "--out", str(out)]
    )  # fmt: skip
    table = capsys.readouterr().out
    assert "| 1M | 64 | damped_sgd (default) | 1.92 |" in table
    (path,) = out.glob("batch-defaults-*.json")
    results = json.loads(path.read_text())["results"]
    # the reference, the defaults, one row_adagrad rate, one damped rate, plain SGD
    assert len(results) == 5
    assert all(np.isfinite(r["test_rmse"]) for r in results if "error" not in r)
    assert results[1]["optimizer_"] == "damped_sgd"


def test_batch_speed_prints_a_ratio_for_each_configuration(tiny_twin, capsys):
    batch_speed.main(["--data", "1M", "--factors", "8", "--reps", "1", "--only", "0,3"])
    table = capsys.readouterr().out
    assert "| per-rating SGD (default) |" in table and "1.00× |" in table
    assert "| batch 1024, damped_sgd (default) |" in table
    with pytest.raises(ValueError, match="unknown data set"):
        batch_defaults.load("2M")
