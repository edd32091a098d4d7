"""A fit lays its ratings out straight from the given order (``fit_ratings``): the same model,
bit for bit, as a fit of the same ratings in (user, item) order, and the same duplicate rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization
from fastmf.data.ratings import Ratings
from fastmf.train.layout import PreparedRatings, fit_ratings
from fastmf.train.state import PendingKey, fingerprint


def _frame(n=6000, n_users=300, n_items=200, seed=0):
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=n, replace=False)
    return pd.DataFrame(
        {
            "user": (cells // n_items) * 7 + 3,
            "item": [f"i{c}" for c in cells % n_items],
            "rating": rng.integers(1, 11, n) / 2.0,
        }
    )


def _fit(X, **kw):
    return MatrixFactorization(n_factors=8, n_epochs=2, random_state=1, verbose=0, **kw).fit(X)


def _same_model(a, b):
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.global_mean_ == b.global_mean_
    np.testing.assert_array_equal(a.user_map_.ids, b.user_map_.ids)
    np.testing.assert_array_equal(a.item_map_.ids, b.item_map_.ids)
    for name in ("users", "items", "values", "block_offsets"):
        got, want = getattr(a._state.blocks, name), getattr(b._state.blocks, name)
        np.testing.assert_array_equal(got, want)


def test_a_shuffled_frame_fits_the_model_of_its_sorted_ratings():
    df = _frame()
    prepared = fit_ratings(df, None, "error", holds_out=False)
    assert isinstance(prepared, PreparedRatings)
    sorted_ratings = Ratings.from_dataframe(df)  # the ordered path: sorts, then lays out
    assert not isinstance(sorted_ratings, PreparedRatings)
    _same_model(_fit(df), _fit(sorted_ratings))
    _same_model(_fit(df), _fit(df.sample(frac=1.0, random_state=5)))


def test_holding_out_a_share_keeps_the_ordered_ratings():
    df = _frame()
    assert not isinstance(fit_ratings(df, None, "error", holds_out=True), PreparedRatings)
    a = _fit(df, validation_fraction=0.2)
    b = _fit(Ratings.from_dataframe(df), validation_fraction=0.2)
    _same_model(a, b)


def test_repeated_pairs_raise_the_same_error_as_the_container():
    df = _frame(n=2000)
    dup = pd.concat([df, df.iloc[[5, 17]]], ignore_index=True).sample(frac=1.0, random_state=2)
    with pytest.raises(ValueError) as container:
        Ratings.from_dataframe(dup)
    with pytest.raises(ValueError) as fitted:
        _fit(dup)
    assert str(fitted.value) == str(container.value)
    assert "2 duplicate (user, item) pairs" in str(fitted.value)


def test_duplicates_last_keeps_the_last_rating_of_each_pair():
    df = _frame(n=2000)
    again = df.iloc[[5, 17, 40]].assign(rating=[0.5, 1.0, 5.0])
    dup = pd.concat([df, again], ignore_index=True)
    ratings = fit_ratings(dup, None, "last", holds_out=False)
    assert not isinstance(ratings, PreparedRatings) and len(ratings) == len(df)
    deduped = pd.concat([df.drop(index=[5, 17, 40]), again], ignore_index=True)
    _same_model(_fit(dup, duplicates="last"), _fit(deduped))


def test_the_fingerprint_is_of_the_set_of_ratings():
    df = _frame(n=3000)
    prepared = fit_ratings(df, None, "error", holds_out=False)
    ordered = Ratings.from_dataframe(df)
    assert fingerprint(prepared) == fingerprint(ordered)
    changed = df.copy()
    changed.loc[10, "rating"] += 0.25
    assert fingerprint(Ratings.from_dataframe(changed)) != fingerprint(ordered)
    # the same pairs and the same ratings, two of them swapped: another set of triples
    r = df["rating"].to_numpy()
    other = int(np.flatnonzero(r != r[10])[0])
    swapped = df.copy()
    swapped.loc[[10, other], "rating"] = [r[other], r[10]]
    assert fingerprint(Ratings.from_dataframe(swapped)) != fingerprint(ordered)


def test_partial_fit_after_fit_reuses_the_layout_of_the_shuffled_frame():
    df = _frame(n=3000)
    model = _fit(df)
    blocks = model._state.blocks
    model.partial_fit(df.sample(frac=1.0, random_state=3))
    assert model._state.blocks.users is blocks.users  # the same layout, not built again


def test_the_key_of_a_fit_from_a_frame_is_the_fingerprint_of_its_ratings():
    # a fit from a frame hashes its data only when the key is first compared, from the layout
    df = _frame(n=3000)
    key = _fit(df)._state.blocks_key
    assert isinstance(key, PendingKey) and key._pending is not None
    assert key == fingerprint(Ratings.from_dataframe(df))
    assert key._pending is None  # computed once, the layout let go of
    assert repr(key) == repr(fingerprint(Ratings.from_dataframe(df)))
    changed = df.copy()
    changed.loc[10, "rating"] += 0.25
    assert _fit(df)._state.blocks_key != fingerprint(Ratings.from_dataframe(changed))


def test_partial_fit_with_changed_ratings_lays_them_out_again():
    df = _frame(n=3000)
    model = _fit(df)
    blocks = model._state.blocks
    changed = df.copy()
    changed.loc[10, "rating"] += 0.25
    model.partial_fit(changed)
    assert model._state.blocks.users is not blocks.users
    before = float(blocks.values.sum(dtype=np.float64))
    assert float(model._state.blocks.values.sum(dtype=np.float64)) == before + 0.25
