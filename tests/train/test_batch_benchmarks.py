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


def test_batch_ablation_prints_every_variant(tiny_twin, capsys):
    from benchmarks import batch_ablation

    batch_ablation.main(["--data", "1M", "--reps", "1"])
    table = capsys.readouterr().out
    for name in ("per-rating SGD (sgd_block)", *batch_ablation.VARIANTS):
        (row,) = [line for line in table.splitlines() if line.startswith(f"| {name} |")]
        median, fastest = (float(x) for x in row.split("|")[2:4])
        assert 0 < fastest <= median


def test_batch_ablation_whole_variant_is_the_library_kernel_bit_for_bit():
    """The ablation's whole body takes the same steps as ``batch_block`` (damped SGD, 64
    float32 factors), so the parts it leaves out are parts of the kernel users run."""
    from benchmarks import batch_ablation
    from fastmf._kernels import minibatch

    rng = np.random.default_rng(4)
    n, n_users, n_items, k, B = 3000, 60, 40, 64, 256
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    values = rng.integers(1, 6, n).astype(np.float32)
    start = (rng.normal(0, 0.1, n_users).astype(np.float32),
             rng.normal(0, 0.1, n_items).astype(np.float32),
             rng.normal(0, 0.1, (n_users, k)).astype(np.float32),
             rng.normal(0, 0.1, (n_items, k)).astype(np.float32))  # fmt: skip
    f32 = np.float32
    hyper = (f32(3.5), f32(0.03 * B), f32(0.05), f32(0.01))

    def scratch(n_rows):
        return (np.zeros((B, k), f32), np.zeros((B, 2), f32), np.zeros((B, 2), np.int32),
                np.full(n_rows, -1, np.int32))  # fmt: skip

    mu, lr, lam, lam_b = hyper
    ours = [x.copy() for x in start]
    run = batch_ablation._variant(batch_ablation.VARIANTS["whole batch kernel"])
    run(np.array([0, n], np.int64), B, users, items, values, mu, *ours, lr, lam, lam_b,
        (*scratch(n_users), *scratch(n_items)))  # fmt: skip
    lib = [x.copy() for x in start]
    empty = np.zeros(0, np.int64)
    user_norms = np.full(n_users, -1.0, f32)  # not known yet
    minibatch.batch_block(0, n, B, users, items, values, mu, *lib, user_norms, lr, lam, lam_b, True,
                  minibatch.DAMPED_SGD,
                  np.zeros((0, n_users, k + 1), f32), empty, np.zeros((0, n_items, k + 1), f32),
                  empty, *scratch(n_users), *scratch(n_items))  # fmt: skip
    assert not np.array_equal(ours[2], start[2])  # it trained
    for a, b in zip(ours, lib, strict=True):
        np.testing.assert_array_equal(a, b)
