"""The defaults that follow the batch size: sentinels in ``get_params``, resolved at fit into
``optimizer_`` and ``learning_rate_``; the per-rating default unchanged to the bit; and with only
``batch_size`` set a fit on the real ml-latest-small within 1% of the per-rating default's test
RMSE (the 25M twin's figures are in benchmarks/README.md)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from fastmf import MatrixFactorization
from fastmf.train.defaults import resolve_learning_rate, resolve_optimizer
from tests.conftest import random_ratings


@pytest.mark.parametrize(
    "optimizer,batch_size,lr,want",
    [
        ("auto", 1, None, ("sgd", 0.03)),
        ("auto", 32, None, ("damped_sgd", 0.96)),
        ("auto", 1024, None, ("damped_sgd", 30.72)),
        ("auto", 1024, 0.5, ("damped_sgd", 0.5)),
        ("sgd", 1, None, ("sgd", 0.03)),
        ("sgd", 256, None, ("sgd", 7.68)),
        ("row_adagrad", 1024, None, ("row_adagrad", 0.1)),
        ("adam", 8, None, ("adam", 0.01)),
        ("adagrad", 1, 0.2, ("adagrad", 0.2)),
    ],
)
def test_resolution(optimizer, batch_size, lr, want):
    got = resolve_optimizer(optimizer, batch_size)
    assert got == want[0]
    assert resolve_learning_rate(lr, got, batch_size) == pytest.approx(want[1], rel=1e-12)


def test_sentinels_are_kept_and_the_resolved_values_are_fitted_attributes():
    df = random_ratings(80, 60, 2000, seed=2)
    m = MatrixFactorization(batch_size=64, n_factors=8, n_epochs=2, random_state=0, verbose=0)
    assert m.get_params()["optimizer"] == "auto" and m.get_params()["learning_rate"] is None
    m.fit(df)
    assert m.get_params()["optimizer"] == "auto" and m.get_params()["learning_rate"] is None
    assert (m.optimizer_, m.learning_rate_) == ("damped_sgd", pytest.approx(0.03 * 64))
    assert m.history_["learning_rate"].iloc[0] == pytest.approx(0.03 * 64)
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "optimizer_")
    with pytest.raises(ValueError, match="optimizer must be one of 'auto'"):
        MatrixFactorization(optimizer="lbfgs").fit(df)


def test_per_rating_default_is_plain_sgd_at_0_03_to_the_bit():
    df = random_ratings(120, 90, 6000, seed=4)
    kw = {"n_factors": 16, "n_epochs": 3, "random_state": 1, "verbose": 0}
    default = MatrixFactorization(**kw).fit(df)
    explicit = MatrixFactorization(optimizer="sgd", learning_rate=0.03, **kw).fit(df)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(default, name), getattr(explicit, name))
    np.testing.assert_array_equal(default.history_.base_loss, explicit.history_.base_loss)
    assert default.optimizer_ == "sgd" and default.learning_rate_ == 0.03


@pytest.fixture(scope="module")
def ml_small(movielens_small):
    rng = np.random.default_rng(20240501)  # the split of tests/train/test_defaults.py
    test = rng.permutation(len(movielens_small))[: len(movielens_small) // 10]
    mask = np.zeros(len(movielens_small), dtype=bool)
    mask[test] = True
    return movielens_small[~mask], movielens_small[mask]


def _rmse(model, test):
    err = model.predict(test) - test["rating"].to_numpy(np.float64)
    return float(np.sqrt(np.mean(err**2)))


@pytest.fixture(scope="module")
def per_rating_rmse(ml_small):
    train, test = ml_small
    return _rmse(MatrixFactorization(random_state=0, verbose=0).fit(train), test)


@pytest.mark.parametrize("batch_size", [32, 256, 1024, 8192])
def test_only_batch_size_set_learns_as_well_as_per_rating(ml_small, per_rating_rmse, batch_size):
    train, test = ml_small
    rmse = _rmse(
        MatrixFactorization(batch_size=batch_size, random_state=0, verbose=0).fit(train), test
    )
    assert rmse <= 1.01 * per_rating_rmse, (batch_size, rmse, per_rating_rmse)


@pytest.mark.parametrize("batch_size", [32, 1024])
def test_batch_defaults_give_the_same_bits_with_one_and_two_threads(batch_size):
    df = random_ratings(300, 200, 20_000, seed=1)
    kw = {"n_factors": 24, "n_epochs": 3, "random_state": 5, "verbose": 0}
    one, two = (MatrixFactorization(batch_size=batch_size, n_jobs=n, **kw).fit(df) for n in (1, 2))
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    np.testing.assert_array_equal(one.history_.base_loss, two.history_.base_loss)
