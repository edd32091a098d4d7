"""The data-aware defaults: "auto" kept by get_params, resolved at fit from the counts alone."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import MatrixFactorization
from fastmf.datasets import synthetic
from fastmf.train.defaults import auto_schedule_decay, data_defaults
from tests.conftest import random_ratings

QUIET = {"random_state": 0, "verbose": 0}


def _counts(df):
    return (
        len(df),
        df["user"].value_counts().to_numpy(),
        df["item"].value_counts().to_numpy(),
    )


def test_get_params_returns_auto_as_given_and_fit_resolves_it():
    df = random_ratings(60, 40, 900)
    m = MatrixFactorization(n_epochs=2, **QUIET)
    assert m.get_params()["n_factors"] == "auto" and m.get_params()["reg"] == "auto"
    m.fit(df)
    assert m.get_params()["n_factors"] == "auto"  # still as given after fit
    want = data_defaults(*_counts(df))
    assert m.n_factors_ == want["n_factors"] == m.user_factors_.shape[1]
    assert m.reg_ == want["reg"]
    assert m.n_epochs_ == 2  # set by hand: kept


def test_resolved_values_come_from_the_training_part_only():
    df = random_ratings(60, 40, 1200)
    m = MatrixFactorization(validation_fraction=0.5, n_epochs=1, **QUIET).fit(df)
    # the held-out half is not counted: a sparser training part, so sparse settings
    assert m.n_factors_ == m.user_factors_.shape[1]
    assert m.reg_ == data_defaults(*_counts(df.iloc[: len(df) // 2]))["reg"]


def test_numbers_given_by_hand_are_used_as_they_are():
    df = random_ratings(60, 40, 900)
    m = MatrixFactorization(n_factors=3, reg=0.2, n_epochs=1, **QUIET).fit(df)
    assert (m.n_factors_, m.reg_, m.n_epochs_) == (3, 0.2, 1)


@pytest.mark.parametrize("name", ["n_factors", "n_epochs", "reg"])
def test_a_string_other_than_auto_is_refused_by_name(name):
    with pytest.raises(TypeError, match=f'{name} must be "auto" or a number'):
        MatrixFactorization(**{name: "many"}).fit(random_ratings(10, 10, 50))


def test_sparse_and_dense_data_get_the_measured_settings():
    sparse = data_defaults(90_000, np.full(1_000, 90), np.full(9_000, 10))  # 9 per row
    assert sparse == {"reg": 0.08, "n_epochs": 40, "n_factors": 256, "init_std": 0.02}
    # ml-100k's shape (31 per row): λ still at its sparse end, the epochs halfway down in log d
    mid = data_defaults(80_000, np.full(1_000, 80), np.full(1_580, 50) + (np.arange(1_580) < 1_000))
    assert mid == {"reg": 0.08, "n_epochs": 30, "n_factors": 256, "init_std": 0.02}
    n = 2_000_000
    dense = data_defaults(n, np.full(10_000, n // 10_000), np.full(5_000, n // 5_000))
    assert dense == {"reg": 0.05, "n_epochs": 20, "n_factors": 64, "init_std": 0.1}  # as before


def test_counts_that_do_not_add_up_are_refused():
    with pytest.raises(ValueError, match="do not add up"):
        data_defaults(100, np.array([50, 40]), np.array([100]))


@settings(max_examples=60, deadline=None)
@given(
    n_users=st.integers(1, 10**6),
    n_items=st.integers(1, 10**6),
    per_row=st.floats(0.5, 500.0),
)
def test_the_rule_is_monotone_in_the_ratings_per_row(n_users, n_items, per_row):
    """More ratings per row never asks for a larger λ, more epochs or more factors."""
    rows = n_users + n_items

    def at(d):
        n = max(int(d * rows), 1)
        users = np.zeros(n_users, np.int64)
        users[0] = n
        items = np.zeros(n_items, np.int64)
        items[0] = n
        return data_defaults(n, users, items)

    lo, hi = at(per_row), at(per_row * 1.5)
    assert hi["reg"] <= lo["reg"] and hi["n_epochs"] <= lo["n_epochs"]
    assert hi["n_factors"] <= lo["n_factors"]
    assert 0.05 <= lo["reg"] <= 0.08 and 20 <= lo["n_epochs"] <= 40


def test_auto_schedule_spreads_twenty_epochs_of_decay_over_the_fit():
    df = random_ratings(50, 30, 700)
    for n_epochs in (5, 20, 60):
        m = MatrixFactorization(n_factors=4, n_epochs=n_epochs, learning_rate=0.01, **QUIET)
        m.fit(df)
        rates = m.history_["learning_rate"].to_numpy()
        expected = 0.01 * 0.8 ** (20 / n_epochs * np.arange(n_epochs))
        np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert auto_schedule_decay(20) == pytest.approx(0.8)
    # lr_decay replaces 0.8 and is spread the same way
    m = MatrixFactorization(n_factors=4, n_epochs=40, learning_rate=0.01, lr_decay=0.5, **QUIET)
    rates = m.fit(df).history_["learning_rate"].to_numpy()
    np.testing.assert_allclose(rates[1] / rates[0], 0.5 ** (20 / 40))


def test_auto_schedule_at_twenty_epochs_is_the_exponential_one():
    df = random_ratings(50, 30, 700)
    a = MatrixFactorization(n_factors=4, n_epochs=20, **QUIET).fit(df)
    b = MatrixFactorization(n_factors=4, n_epochs=20, lr_schedule="exponential", **QUIET).fit(df)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)


def test_partial_fit_continues_the_fit_resolved_values_and_schedule():
    df = random_ratings(50, 30, 700)
    m = MatrixFactorization(n_epochs=6, **QUIET).fit(df)
    k, reg = m.n_factors_, m.reg_
    m.partial_fit(df)
    assert (m.n_factors_, m.reg_, m.n_epochs_) == (k, reg, 6)
    lr = m.history_["learning_rate"].to_numpy()
    np.testing.assert_allclose(lr[6] / lr[5], 0.8 ** (20 / 6))


def test_resolved_values_survive_pickling_and_a_failed_fit_restores_them():
    df = random_ratings(50, 30, 700)
    m = MatrixFactorization(n_epochs=2, **QUIET).fit(df)
    back = pickle.loads(pickle.dumps(m))
    assert (back.n_factors_, back.reg_, back.n_epochs_) == (m.n_factors_, m.reg_, 2)

    def boom(model, row):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        m.set_params(n_epochs=3, callbacks=[boom]).fit(df)
    assert m.n_epochs_ == 2


@pytest.mark.slow
def test_more_epochs_never_hurt_much_on_a_known_answer():
    """With the "auto" schedule 60 epochs end near the hidden model, as a constant rate does,
    where 0.8 per epoch froze the model after about 15."""
    df, truth = synthetic(n_users=400, n_items=300, n_ratings=40_000, rank=4, noise=0.3,
                          scale=None, random_state=2, return_truth=True)  # fmt: skip
    df = df.sample(frac=1.0, random_state=0)
    df["user"] = "u" + df["user"].astype(str)
    df["item"] = "i" + df["item"].astype(str)
    train, test = df.iloc[:36_000], df.iloc[36_000:]
    oracle = truth.rmse(test.assign(user=test.user.str[1:].astype(int),
                                    item=test.item.str[1:].astype(int)))  # fmt: skip
    kw = {"n_factors": 8, "reg": 0.03, **QUIET}
    got = {n: -MatrixFactorization(n_epochs=n, **kw).fit(train).score(test) for n in (20, 60)}
    frozen = MatrixFactorization(n_epochs=60, lr_schedule="exponential", **kw).fit(train)
    assert got[60] <= 1.10 * oracle, (got, oracle)
    assert got[60] <= got[20] * 1.01  # three times the epochs cost nothing in accuracy
    assert got[60] < -frozen.score(test)  # and beat the schedule that froze
    assert math.isfinite(oracle)
