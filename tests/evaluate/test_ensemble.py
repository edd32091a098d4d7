"""``average_models``: one biased MF model that predicts the members' mean, and its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmf
from fastmf import MatrixFactorization
from fastmf.errors import NotFittedError
from fastmf.tune import average_models
from tests.conftest import random_ratings


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return random_ratings(60, 40, 900, seed=5)


def _fit(df, k=4, seed=0, **kw):
    return MatrixFactorization(n_factors=k, n_epochs=3, random_state=seed, verbose=0, **kw).fit(df)


def _reference(models, users, items) -> np.ndarray:
    """The members' mean prediction, unclipped, from their arrays (an unknown id: its bias 0)."""
    out = np.zeros(len(users))
    for m in models:
        u = m.user_map_.lookup(users)
        i = m.item_map_.lookup(items)
        pu = np.where(u[:, None] >= 0, m.user_factors_[u].astype(np.float64), 0.0)
        qi = np.where(i[:, None] >= 0, m.item_factors_[i].astype(np.float64), 0.0)
        bu = np.where(u >= 0, m.user_bias_[u], 0.0)
        bi = np.where(i >= 0, m.item_bias_[i], 0.0)
        out += m.global_mean_ + bu + bi + (pu * qi).sum(axis=1)
    return out / len(models)


def _pairs(df):
    extra = pd.DataFrame({"user": [10_000, 0, 10_000], "item": [0, 10_000, 10_001]})
    return pd.concat([df[["user", "item"]], extra], ignore_index=True)


def test_the_average_predicts_the_members_mean(df):
    models = [_fit(df, 4, 0), _fit(df, 8, 1, reg=0.1), _fit(df, 2, 2, learning_rate=0.02)]
    merged = average_models(models)
    pairs = _pairs(df)
    ref = _reference(models, pairs.user.to_numpy(), pairs.item.to_numpy())
    np.testing.assert_allclose(merged.predict(pairs, clip=False), ref, rtol=1e-5, atol=1e-5)
    lo, hi = merged.rating_scale_
    np.testing.assert_allclose(merged.predict(pairs), np.clip(ref, lo, hi), rtol=1e-5, atol=1e-5)
    # differs from every member: the average is not one of them
    for m in models:
        assert np.abs(m.predict(pairs, clip=False) - ref).max() > 1e-3


@settings(max_examples=8, deadline=None)
@given(ks=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 1000))
def test_any_members_sum_their_factors_and_average_their_predictions(df, ks, seed):
    models = [_fit(df, k, seed + j) for j, k in enumerate(ks)]
    merged = average_models(models)
    assert merged.n_factors == merged.n_factors_ == sum(ks)
    assert merged.user_factors_.shape == (len(models[0].user_map_), sum(ks))
    ref = _reference(models, df.user.to_numpy(), df.item.to_numpy())
    np.testing.assert_allclose(merged.predict(df, clip=False), ref, rtol=1e-5, atol=1e-5)


def test_the_params_are_the_firsts_with_the_summed_factors_and_members_unchanged(df):
    a, b = _fit(df, 4, 0, reg=0.07), _fit(df, 6, 1, reg=0.2)
    before = [m.user_factors_.copy() for m in (a, b)]
    merged = average_models([a, b])
    params = merged.get_params()
    assert params == {**a.get_params(), "n_factors": 10}
    assert merged.reg_ == a.reg_ and merged.n_epochs_ == a.n_epochs_
    for m, old in zip((a, b), before, strict=True):
        np.testing.assert_array_equal(m.user_factors_, old)
    assert merged is not a and merged.user_factors_ is not a.user_factors_
    # a fit of its parameters trains one model of that width
    wide = MatrixFactorization(**params).fit(df)
    assert wide.user_factors_.shape[1] == 10
    merged.partial_fit(df)  # the merged factors train on
    assert np.isfinite(merged.predict(df)).all()


def test_one_model_averages_to_itself(df):
    m = _fit(df, 5, 3)
    np.testing.assert_allclose(average_models([m]).predict(df), m.predict(df), rtol=1e-6)


def test_the_average_saves_loads_and_recommends_like_any_model(df, tmp_path):
    models = [_fit(df, 3, 0), _fit(df, 5, 1)]
    merged = average_models(models)
    path = tmp_path / "avg.fastmf"
    merged.save(path)
    loaded = fastmf.load(path)
    np.testing.assert_array_equal(loaded.predict(df), merged.predict(df))
    assert loaded.get_params() == merged.get_params()
    user = int(df.user.iloc[0])
    got = merged.recommend(user, n=5)
    pd.testing.assert_frame_equal(got, loaded.recommend(user, n=5))
    # the top five unseen items by the members' mean score
    seen = set(df.loc[df.user == user, "item"])
    items = np.array([i for i in models[0].item_map_.ids if i not in seen])
    scores = _reference(models, np.full(len(items), user), items)
    top = items[np.argsort(-scores, kind="stable")[:5]]
    assert list(got["item"]) == list(top)


def test_models_of_the_same_ratings_in_another_order_average(df):
    shuffled = df.sample(frac=1.0, random_state=0)
    merged = average_models([_fit(df, 2, 0), _fit(shuffled, 2, 1)])
    assert merged.n_factors_ == 4


def test_what_is_not_a_list_of_fitted_models_is_refused(df):
    m = _fit(df)
    with pytest.raises(TypeError, match="list of fitted MatrixFactorization"):
        average_models(m)
    with pytest.raises(ValueError, match="empty"):
        average_models([])
    with pytest.raises(TypeError, match=r"models\[1\] is a str"):
        average_models([m, "model"])
    with pytest.raises(NotFittedError):
        average_models([m, MatrixFactorization()])


def test_models_of_other_data_are_refused(df):
    m = _fit(df)
    other_ratings = df.assign(rating=df.rating.where(df.index != 0, 5.0 - df.rating + 0.5))
    with pytest.raises(ValueError, match="global mean"):
        average_models([m, _fit(other_ratings)])
    fewer = df[df.user != df.user.iloc[0]]
    with pytest.raises(ValueError, match="other user ids"):
        average_models([m, _fit(fewer)])
    with pytest.raises(ValueError, match="dtype"):
        average_models([m, _fit(df, dtype="float64")])
