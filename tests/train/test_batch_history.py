"""The loss at batch resolution: ``record_batches=True`` fills ``batch_history_`` with points of
whole batches that sum to ``history_``, are the same with 1 and 2 threads, stay few at any batch
size, and leave the model as it is without recording."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import MatrixFactorization
from fastmf.train import batch_points as bp
from tests.conftest import random_ratings

COLUMNS = ["epoch", "batch", "n_ratings", "base_loss", "reg_loss", "total_loss"]


@pytest.fixture(scope="module")
def ratings():
    return random_ratings(300, 200, 20_000, seed=1)  # S = 8: 64 blocks of about 310 ratings


def _fit(ratings, **kw):
    args = {"n_factors": 16, "n_epochs": 3, "random_state": 5, "verbose": 0, "reg_bias": 0.01}
    return MatrixFactorization(**{**args, **kw}).fit(ratings)


@pytest.mark.parametrize("batch_size", [1, 32, 1024])
def test_points_sum_to_the_epoch_history(ratings, batch_size):
    m = _fit(ratings, batch_size=batch_size, record_batches=True)
    bh = m.batch_history_
    assert list(bh.columns) == COLUMNS
    assert sorted(bh.epoch.unique()) == [1, 2, 3]
    for epoch, points in bh.groupby("epoch"):
        row = m.history_.set_index("epoch").loc[epoch]
        n = points.n_ratings.to_numpy()
        assert n.sum() == len(ratings)
        for col in ("base_loss", "reg_loss", "total_loss"):
            total = float((points[col] * n).sum() / n.sum())
            assert total == pytest.approx(row[col], rel=1e-9)
        # batch indices count the batches in order: each point starts where the last one ended
        batches = -(-n // batch_size)
        np.testing.assert_array_equal(points.batch, np.concatenate(([0], np.cumsum(batches)[:-1])))
        assert (points.reg_loss > 0).all() and (points.base_loss > 0).all()


def test_every_batch_is_a_point_when_an_epoch_has_few(ratings):
    m = _fit(ratings, batch_size=32, record_batches=True, n_epochs=1)
    bh = m.batch_history_
    assert (bh.n_ratings <= 32).all()
    assert bh.batch.tolist() == list(range(len(bh)))
    # a point (a batch) never spans two blocks: there are more points than whole batches would give
    assert len(bh) >= -(-len(ratings) // 32)


def test_points_stay_few_at_batch_size_one(ratings):
    m = _fit(ratings, batch_size=1, record_batches=True, n_epochs=2)
    per_epoch = m.batch_history_.groupby("epoch").size()
    n_blocks = 8 * 8
    assert (per_epoch <= bp.MAX_POINTS + n_blocks).all()
    assert (per_epoch >= bp.MAX_POINTS // 2).all()  # and still resolve the epoch finely


@pytest.mark.parametrize(
    "kw", [{"batch_size": 1}, {"batch_size": 64}, {"batch_size": 16, "optimizer": "adam"}]
)
def test_one_and_two_threads_record_the_same_points(ratings, kw):
    one, two = (_fit(ratings, record_batches=True, n_jobs=n, **kw) for n in (1, 2))
    pd.testing.assert_frame_equal(one.batch_history_, two.batch_history_, check_exact=True)


@pytest.mark.parametrize("kw", [{"batch_size": 1}, {"batch_size": 256}])
def test_recording_leaves_the_model_unchanged(ratings, kw):
    on, off = (_fit(ratings, record_batches=r, **kw) for r in (True, False))
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(on, name), getattr(off, name))
    np.testing.assert_allclose(on.history_.total_loss, off.history_.total_loss, rtol=1e-12)
    assert not hasattr(off, "batch_history_")


def test_partial_fit_appends_and_fit_starts_over(ratings):
    m = _fit(ratings, batch_size=128, record_batches=True, n_epochs=2)
    m.partial_fit(ratings)
    assert sorted(m.batch_history_.epoch.unique()) == [1, 2, 3]
    m.fit(ratings)
    assert sorted(m.batch_history_.epoch.unique()) == [1, 2]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=40),
    batch_size=st.integers(1, 500),
    max_points=st.integers(1, 300),
)
def test_points_are_whole_batches_inside_one_block(sizes, batch_size, max_points):
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    bounds, owned = bp.batch_points(offsets, batch_size, max_points)
    assert owned[0] == 0 and owned[-1] == len(bounds) - 1
    n_batches = sum(-(-s // batch_size) for s in sizes)
    assert len(bounds) - 1 <= max_points + len(sizes)
    if n_batches <= max_points:
        assert len(bounds) - 1 == n_batches
    for b in range(len(sizes)):
        mine = bounds[owned[b] : owned[b + 1] + 1]
        if owned[b] == owned[b + 1]:
            assert sizes[b] == 0
            continue
        assert mine[0] == offsets[b] and mine[-1] == offsets[b + 1]
        assert np.all(np.diff(mine) > 0)
        assert np.all((mine[:-1] - offsets[b]) % batch_size == 0)  # every point starts a batch


@given(n_strata=st.integers(1, 6), seed=st.integers(0, 1000))
def test_execution_order_runs_every_point_once_shift_by_shift(n_strata, seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 50, n_strata * n_strata)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    bounds, owned = bp.batch_points(offsets, 7)
    shift_order = rng.permutation(n_strata)
    order = bp.execution_order(owned, shift_order, n_strata)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(bounds) - 1))
    block_of = np.repeat(np.arange(len(sizes)), np.diff(owned))[order]
    s = n_strata
    shift = (block_of % s - block_of // s) % s  # block (a, b) runs in shift (b - a) mod S
    ranks = np.argsort(shift_order)[shift]
    assert np.all(np.diff(ranks) >= 0)


def test_plot_history_draws_the_points_faintly_under_the_epochs(ratings, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from fastmf import plot_history

    m = _fit(ratings, batch_size=256, record_batches=True)
    fig = plot_history(m, path=tmp_path / "h.png")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    faint = lines["_batch total_loss"]
    np.testing.assert_allclose(faint.get_ydata(), m.batch_history_.total_loss)
    x = np.asarray(faint.get_xdata())
    assert np.all(np.diff(x) > 0) and x[0] > 0 and x[-1] <= m.n_epochs_done_
    assert faint.get_alpha() < 0.5 and faint.get_zorder() < lines["total loss"].get_zorder()
    assert (tmp_path / "h.png").stat().st_size > 0
    # a history without batch points draws no faint lines
    fig = plot_history(m.history_)
    assert not any(line.get_label().startswith("_batch") for line in fig.axes[0].get_lines())


def test_plot_title_names_the_optimizer_the_fit_resolved(ratings):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from fastmf import plot_history

    m = _fit(ratings, batch_size=256, n_epochs=2)
    fig = plot_history(m, annotate=False)
    assert "optimizer=damped_sgd" in fig._suptitle.get_text()


def test_record_batches_must_be_a_bool(ratings):
    with pytest.raises(TypeError, match="record_batches must be True or False, got 'yes'"):
        MatrixFactorization(record_batches="yes").fit(ratings)
