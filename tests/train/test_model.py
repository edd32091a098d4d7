"""The estimator: the scikit-learn contract, history, partial_fit, schedules, stopping and
fallbacks."""

from __future__ import annotations

import os
import pickle
import signal

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization
from fastmf.model import NotFittedError, fixed_biases
from fastmf.ratings import Ratings
from tests.conftest import random_ratings

FAST = {"n_factors": 4, "n_epochs": 3, "random_state": 0, "verbose": 0}


def _same_model(a: MatrixFactorization, b: MatrixFactorization) -> None:
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.global_mean_ == b.global_mean_


def test_fit_returns_self_and_learned_attributes(small_ratings):
    m = MatrixFactorization(**FAST)
    assert m.fit(small_ratings) is m
    n_users, n_items = small_ratings.user.nunique(), small_ratings.item.nunique()
    assert m.user_factors_.shape == (n_users, 4) and m.item_factors_.shape == (n_items, 4)
    assert m.user_factors_.dtype == np.float32
    assert m.user_bias_.shape == (n_users,) and m.item_bias_.shape == (n_items,)
    assert m.global_mean_ == pytest.approx(small_ratings.rating.mean())
    assert sorted(m.user_ids_.tolist()) == sorted(small_ratings.user.unique().tolist())
    assert sorted(m.item_ids_.tolist()) == sorted(small_ratings.item.unique().tolist())
    assert m.rating_scale_ == (small_ratings.rating.min(), small_ratings.rating.max())


def test_rows_follow_ids(small_ratings):
    m = MatrixFactorization(**FAST).fit(small_ratings)
    user, item = small_ratings.user.iloc[7], small_ratings.item.iloc[7]
    u = int(np.flatnonzero(m.user_ids_ == user)[0])
    i = int(np.flatnonzero(m.item_ids_ == item)[0])
    want = (
        m.global_mean_ + m.user_bias_[u] + m.item_bias_[i] + m.user_factors_[u] @ m.item_factors_[i]
    )
    got = m.predict(pd.DataFrame({"user": [user], "item": [item]}), clip=False)[0]
    assert got == pytest.approx(want, rel=1e-6)


def test_seen_items_csr(small_ratings):
    m = MatrixFactorization(**FAST).fit(small_ratings)
    for u in range(0, len(m.user_ids_), 7):
        got = m.item_ids_[m.seen_items_[m.seen_indptr_[u] : m.seen_indptr_[u + 1]]]
        want = small_ratings.item[small_ratings.user == m.user_ids_[u]]
        assert sorted(got.tolist()) == sorted(want.tolist())
        rows = m.seen_items_[m.seen_indptr_[u] : m.seen_indptr_[u + 1]]
        assert np.all(np.diff(rows) > 0)


def test_history_parts_add_up(small_ratings):
    m = MatrixFactorization(**FAST).fit(small_ratings, validation=small_ratings.iloc[:100])
    h = m.history_
    assert list(h.epoch) == [1, 2, 3]
    for col in (
        "base_loss",
        "reg_loss",
        "total_loss",
        "train_rmse",
        "val_rmse",
        "val_mae",
        "seconds",
    ):
        assert col in h.columns
    np.testing.assert_allclose(h.total_loss, h.base_loss + h.reg_loss)
    np.testing.assert_allclose(h.train_rmse, np.sqrt(h.base_loss))
    # val figures are those of the final model on the validation set
    pred = m.predict(small_ratings.iloc[:100])
    err = pred - small_ratings.rating.iloc[:100].to_numpy()
    assert h.val_rmse.iloc[-1] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-6)
    assert h.val_mae.iloc[-1] == pytest.approx(np.mean(np.abs(err)), rel=1e-6)


def test_first_epoch_losses_are_those_of_the_initial_model(small_ratings):
    """With one stratum and one batch holding every rating, the epoch's losses are L_B's two
    numerators at the initial parameters, divided by n."""
    m = MatrixFactorization(n_factors=3, n_epochs=0, random_state=2, verbose=0, reg=0.1,
                            batch_size=len(small_ratings))  # fmt: skip
    m.fit(small_ratings)
    u = m.user_map_.lookup(small_ratings.user.to_numpy())
    i = m.item_map_.lookup(small_ratings.item.to_numpy())
    P, Q = m.user_factors_.astype(float), m.item_factors_.astype(float)
    r = small_ratings.rating.to_numpy()
    pred = m.global_mean_ + P[u].__mul__(Q[i]).sum(1)
    base = np.mean((r - pred) ** 2)
    reg = 0.1 * np.mean((P[u] ** 2).sum(1) + (Q[i] ** 2).sum(1))
    m._state.blocks = None  # force a single-stratum layout of the same data
    from fastmf.train.layout import Strata

    m._state.user_strata = Strata(np.array([0, len(m.user_ids_)]))
    m._state.item_strata = Strata(np.array([0, len(m.item_ids_)]))
    m.partial_fit(small_ratings)
    assert m.history_.base_loss.iloc[0] == pytest.approx(base, rel=1e-5)
    assert m.history_.reg_loss.iloc[0] == pytest.approx(reg, rel=1e-5)


def test_same_seed_same_model_and_other_seed_differs(small_ratings):
    a = MatrixFactorization(**FAST).fit(small_ratings)
    b = MatrixFactorization(**FAST).fit(small_ratings)
    _same_model(a, b)
    c = MatrixFactorization(**{**FAST, "random_state": 1}).fit(small_ratings)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


@pytest.mark.parametrize("kw", [{}, {"batch_size": 8, "optimizer": "adam", "learning_rate": 0.01}])
def test_partial_fit_continues_fit_exactly(small_ratings, kw):
    # a schedule that does not stretch over n_epochs, as "auto" does
    kw = {"lr_schedule": "exponential", **kw}
    full = MatrixFactorization(**{**FAST, "n_epochs": 6, **kw}).fit(small_ratings)
    part = MatrixFactorization(**{**FAST, "n_epochs": 3, **kw}).fit(small_ratings)
    for _ in range(3):
        part.partial_fit(small_ratings)
    _same_model(full, part)
    assert part.n_epochs_done_ == 6 and len(part.history_) == 6
    np.testing.assert_allclose(full.history_.base_loss, part.history_.base_loss)


def test_partial_fit_on_unfitted_model_initializes(small_ratings):
    m = MatrixFactorization(**FAST).partial_fit(small_ratings)
    assert m.n_epochs_done_ == 1


def test_partial_fit_rejects_unseen_ids(small_ratings):
    m = MatrixFactorization(**FAST).fit(small_ratings)
    new = pd.DataFrame({"user": [10_000], "item": [small_ratings.item.iloc[0]], "rating": [3.0]})
    with pytest.raises(ValueError, match="user ids were not seen at fit"):
        m.partial_fit(new)


def test_predict_falls_back_for_unknown_ids_and_clips(small_ratings):
    m = MatrixFactorization(**FAST).fit(small_ratings)
    known_u, known_i = small_ratings.user.iloc[0], small_ratings.item.iloc[0]
    u = int(np.flatnonzero(m.user_ids_ == known_u)[0])
    i = int(np.flatnonzero(m.item_ids_ == known_i)[0])
    X = pd.DataFrame({"user": [known_u, -5, -5], "item": [-7, known_i, -7]})
    got = m.predict(X, clip=False)
    np.testing.assert_allclose(
        got,
        [m.global_mean_ + m.user_bias_[u], m.global_mean_ + m.item_bias_[i], m.global_mean_],
        rtol=1e-6,
    )
    m.user_bias_[u] = 50.0
    assert m.predict(np.array([[known_u, known_i]]))[0] == small_ratings.rating.max()
    assert m.predict(np.array([[known_u, known_i]]), clip=False)[0] > 40


def test_array_input_and_score(small_ratings):
    X = small_ratings[["user", "item"]].to_numpy()
    y = small_ratings.rating.to_numpy()
    m = MatrixFactorization(**FAST).fit(X, y)
    pred = m.predict(X)
    assert m.score(X, y) == pytest.approx(-np.sqrt(np.mean((pred - y) ** 2)))
    assert m.score(small_ratings) == pytest.approx(m.score(X, y))


def test_string_ids(small_ratings):
    df = small_ratings.assign(
        user="u" + small_ratings.user.astype(str), item="i" + small_ratings.item.astype(str)
    )
    m = MatrixFactorization(**FAST).fit(df)
    assert isinstance(m.user_ids_[0], str)
    np.testing.assert_allclose(
        m.predict(df),
        MatrixFactorization(**FAST).fit(small_ratings).predict(small_ratings),
        rtol=0,
        atol=0.5,
    )


def test_sparse_input():
    sparse = pytest.importorskip("scipy.sparse")
    df = random_ratings(30, 20, 200)
    mat = sparse.csr_matrix((df.rating, (df.user, df.item)), shape=(30, 20))
    m = MatrixFactorization(**FAST).fit(mat)
    n_users = len(np.unique(df.user))
    assert len(m.user_ids_) == 30 and n_users <= 30


def test_get_set_params_clone_and_pickle(small_ratings):
    sklearn_base = pytest.importorskip("sklearn.base")
    m = MatrixFactorization(n_factors=7, reg=0.1)
    assert m.get_params()["n_factors"] == 7
    assert m.set_params(n_factors=3) is m and m.n_factors == 3
    with pytest.raises(ValueError, match="unknown parameter 'factors'"):
        m.set_params(factors=3)
    c = sklearn_base.clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "user_factors_")
    m.set_params(**FAST).fit(small_ratings)
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.predict(small_ratings), m.predict(small_ratings))
    back.partial_fit(small_ratings)  # training state survives pickling
    assert back.n_epochs_done_ == 4


def test_grid_search_cv(small_ratings):
    model_selection = pytest.importorskip("sklearn.model_selection")
    X = small_ratings[["user", "item"]].to_numpy()
    y = small_ratings.rating.to_numpy()
    search = model_selection.GridSearchCV(
        MatrixFactorization(**FAST), {"reg": [0.01, 0.5]}, cv=2
    ).fit(X, y)
    assert search.best_params_["reg"] in (0.01, 0.5)
    assert np.isfinite(search.best_score_) and search.best_score_ < 0


def test_unfitted_model_errors():
    with pytest.raises(NotFittedError, match="not fitted"):
        MatrixFactorization().predict(np.array([[1, 2]]))


def test_fixed_biases_formula(small_ratings):
    m = MatrixFactorization(**FAST, biases="fixed", bias_damping=3.0).fit(small_ratings)
    r = small_ratings.rating.to_numpy(float)
    mu = r.mean()
    item = small_ratings.item.to_numpy()
    user = small_ratings.user.to_numpy()
    some_item = item[0]
    mask = item == some_item
    b_i = np.sum(r[mask] - mu) / (mask.sum() + 3.0)
    i_row = int(np.flatnonzero(m.item_ids_ == some_item)[0])
    assert m.item_bias_[i_row] == pytest.approx(b_i, rel=1e-5)
    # b_u from what the item biases leave
    bi_all = {
        iid: np.sum(r[item == iid] - mu) / ((item == iid).sum() + 3.0) for iid in np.unique(item)
    }
    some_user = user[0]
    um = user == some_user
    b_u = np.sum(r[um] - mu - np.array([bi_all[x] for x in item[um]])) / (um.sum() + 3.0)
    u_row = int(np.flatnonzero(m.user_ids_ == some_user)[0])
    assert m.user_bias_[u_row] == pytest.approx(b_u, rel=1e-5)
    # and fixed means not trained
    ratings = Ratings.from_dataframe(small_ratings)
    fb_u, _ = fixed_biases(ratings, mu, 3.0)
    np.testing.assert_allclose(np.sort(m.user_bias_), np.sort(fb_u), rtol=1e-5)


def test_no_biases_stay_zero(small_ratings):
    m = MatrixFactorization(**FAST, biases="none").fit(small_ratings)
    assert not m.user_bias_.any() and not m.item_bias_.any()


def test_reg_bias_counts_in_reg_loss(small_ratings):
    a = MatrixFactorization(**FAST, reg=0.0, reg_bias=0.5).fit(small_ratings)
    assert a.history_.reg_loss.iloc[-1] > 0


@pytest.mark.parametrize(
    "schedule,decay,expected",
    [
        ("constant", None, [0.01, 0.01, 0.01, 0.01]),
        ("step", 0.5, [0.01, 0.01, 0.005, 0.005]),
        ("exponential", 0.9, [0.01, 0.009, 0.0081, 0.00729]),
    ],
)
def test_learning_rate_schedules(small_ratings, schedule, decay, expected):
    m = MatrixFactorization(**{**FAST, "n_epochs": 4}, learning_rate=0.01, lr_schedule=schedule,
                            lr_decay=decay, lr_step_size=2).fit(small_ratings)  # fmt: skip
    np.testing.assert_allclose(m.history_.learning_rate, expected)


def test_callable_and_plateau_schedules(small_ratings):
    m = MatrixFactorization(**FAST, lr_schedule=lambda epoch, lr: lr / (1 + epoch)).fit(
        small_ratings
    )
    np.testing.assert_allclose(m.history_.learning_rate, [0.03, 0.015, 0.01])
    # plateau halves the rate when the monitored error does not improve
    m = MatrixFactorization(**{**FAST, "n_epochs": 8, "n_factors": 16}, learning_rate=0.05,
                            reg=0.0, lr_schedule="plateau")  # fmt: skip
    m.fit(small_ratings.iloc[:700], validation=small_ratings.iloc[700:])
    lrs = m.history_.learning_rate.to_numpy()
    val = m.history_.val_rmse.to_numpy()
    assert lrs[0] == 0.05 and np.all(np.diff(lrs) <= 0) and lrs[-1] < 0.05
    for e in range(1, len(lrs)):  # each cut follows an epoch that did not improve on the best
        if lrs[e] < lrs[e - 1]:
            assert val[e - 1] >= val[: e - 1].min() - 1e-4 if e > 1 else True


def test_callback_stops_training(small_ratings):
    seen = []

    def stop_at_two(model, row):
        seen.append(row["epoch"])
        return row["epoch"] == 2

    m = MatrixFactorization(**{**FAST, "n_epochs": 10}, callbacks=[stop_at_two]).fit(small_ratings)
    assert seen == [1, 2] and m.n_epochs_done_ == 2


def test_callback_error_leaves_the_previous_model(small_ratings):
    def boom(model, row):
        if row["epoch"] == 2:
            raise RuntimeError("callback failed")

    m = MatrixFactorization(**{**FAST, "n_epochs": 5}, callbacks=[boom])
    with pytest.raises(RuntimeError, match="callback failed"):
        m.fit(small_ratings)
    assert not hasattr(m, "user_factors_")  # no previous model: still unfitted
    m.set_params(callbacks=None).fit(small_ratings)
    before = m.predict(small_ratings)
    with pytest.raises(RuntimeError, match="callback failed"):
        m.set_params(callbacks=[boom], random_state=7).fit(small_ratings)
    assert m.n_epochs_done_ == 5
    np.testing.assert_array_equal(m.predict(small_ratings), before)


def test_early_stopping_restores_best_epoch():
    df = random_ratings(80, 60, 2500, seed=4)
    train, val = df.iloc[:2000], df.iloc[2000:]
    m = MatrixFactorization(
        n_factors=32,
        n_epochs=60,
        learning_rate=0.03,
        reg=0.0,
        random_state=0,
        verbose=0,
        early_stopping=True,
        patience=3,
    ).fit(train, validation=val)
    h = m.history_
    assert len(h) < 60  # noise ratings: validation error turns up and training stops
    best = int(h.val_rmse.idxmin())
    assert m.best_epoch_ == h.epoch[best]
    assert -m.score(val) == pytest.approx(h.val_rmse[best], rel=1e-6)


def test_validation_fraction_holds_out_ratings(small_ratings):
    m = MatrixFactorization(**FAST, validation_fraction=0.2).fit(small_ratings)
    assert "val_rmse" in m.history_.columns
    n_seen = int(m.seen_indptr_[-1])
    assert 0.7 * len(small_ratings) < n_seen < 0.9 * len(small_ratings)


def test_divergence_raises_and_keeps_previous_model(small_ratings):
    from fastmf import NonFiniteModelError

    m = MatrixFactorization(**FAST).fit(small_ratings)
    before = m.predict(small_ratings)
    with pytest.raises(NonFiniteModelError, match="lower learning_rate"):
        m.set_params(learning_rate=1e6, n_epochs=5, random_state=3).fit(small_ratings)
    np.testing.assert_array_equal(m.predict(small_ratings), before)
    m.set_params(learning_rate=0.005)
    with pytest.raises(NonFiniteModelError):
        m.set_params(learning_rate=1e6).partial_fit(small_ratings)
    np.testing.assert_array_equal(m.predict(small_ratings), before)


def test_ctrl_c_stops_after_the_running_epoch(small_ratings):
    def interrupt(model, row):
        if row["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    m = MatrixFactorization(**{**FAST, "n_epochs": 10}, callbacks=[interrupt])
    with pytest.raises(KeyboardInterrupt):
        m.fit(small_ratings)
    assert m.n_epochs_done_ == 2 and len(m.history_) == 2
    assert np.isfinite(m.predict(small_ratings)).all()


def test_float64_dtype(small_ratings):
    m = MatrixFactorization(**FAST, dtype="float64").fit(small_ratings)
    assert m.user_factors_.dtype == np.float64


def test_verbose_zero_prints_nothing(small_ratings, capsys):
    MatrixFactorization(**FAST).fit(small_ratings)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_bar_when_verbose(small_ratings, capsys):
    MatrixFactorization(**{**FAST, "verbose": 1}).fit(small_ratings)
    assert "epoch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "ids",
    [
        np.array([5, 3, 5, 9, 3], np.int32),
        np.array([-4, 7, -4, 0], np.int16),
        np.array([12, 7, 12], np.uint64),
        np.array([10**15, 3, 10**15]),  # too spread out for a table
        np.array([2**64 - 1, 3, 3], np.uint64),  # past int64
    ],
)
def test_integer_ids_get_codes_in_sorted_id_order(ids):
    from fastmf.ratings import factorize_ids

    codes, id_map = factorize_ids(ids, column="user")
    uniques, inverse = np.unique(ids, return_inverse=True)
    assert codes.dtype == np.int32
    np.testing.assert_array_equal(codes, inverse)
    assert [int(x) for x in id_map.ids] == [int(x) for x in uniques]
    np.testing.assert_array_equal(id_map.lookup(ids), inverse)
