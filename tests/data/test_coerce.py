"""Input coercion (fastmf.data.coerce): every form ``fit`` accepts gives the same Ratings, raw id
pairs come out of a DataFrame or an (n, 2) array, and a validation set is checked.

The reference for the Ratings is a plain sort of the input triples by (user id, item id).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf.data.coerce import pairs, to_ratings, validation_frame
from fastmf.data.ratings import Ratings
from tests.conftest import random_ratings


def reference_triples(df: pd.DataFrame) -> list[tuple[int, int, float]]:
    """The (user id, item id, rating) rows of ``df`` in (user, item) order, as Python values."""
    rows = zip(df["user"].tolist(), df["item"].tolist(), df["rating"].tolist(), strict=True)
    return sorted((int(u), int(i), float(r)) for u, i, r in rows)


def triples_of(ratings: Ratings) -> list[tuple[int, int, float]]:
    """The raw (user id, item id, rating) rows of a Ratings container, in its order."""
    users = ratings.user_map.ids[ratings.users].tolist()
    items = ratings.item_map.ids[ratings.items].tolist()
    return [
        (int(u), int(i), float(r))
        for u, i, r in zip(users, items, ratings.values.tolist(), strict=True)
    ]


@settings(max_examples=30, deadline=None)
@given(
    n_users=st.integers(1, 12),
    n_items=st.integers(1, 12),
    fill=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_dataframe_array_and_sparse_input_give_the_same_ratings(n_users, n_items, fill, seed):
    n = max(1, int(fill * n_users * n_items))
    df = random_ratings(n_users, n_items, n, seed)
    expected = reference_triples(df)

    from_frame = to_ratings(df)
    from_frame_and_y = to_ratings(df[["user", "item"]], df["rating"].to_numpy())
    from_array = to_ratings(df[["user", "item"]].to_numpy(), df["rating"].to_numpy())
    for ratings in (from_frame, from_frame_and_y, from_array):
        assert isinstance(ratings, Ratings)
        assert triples_of(ratings) == expected

    matrix = sp.coo_matrix(
        (df["rating"], (df["user"], df["item"])), shape=(n_users + 1, n_items + 2)
    )
    from_sparse = to_ratings(matrix.tocsr())
    assert triples_of(from_sparse) == expected
    # a sparse matrix gives every row and column an index, rated or not
    assert (from_sparse.n_users, from_sparse.n_items) == (n_users + 1, n_items + 2)


def test_y_replaces_the_rating_column_of_a_dataframe():
    df = random_ratings(5, 6, 20, seed=1)
    y = np.arange(20, dtype=np.float64) / 4
    ratings = to_ratings(df, y)
    expected = reference_triples(df.assign(rating=y))
    assert triples_of(ratings) == expected


def test_a_ratings_container_passes_through_unchanged():
    ratings = to_ratings(random_ratings(4, 4, 10, seed=2))
    assert to_ratings(ratings) is ratings


@pytest.mark.parametrize("policy", ["error", "last"])
def test_the_duplicate_policy_reaches_every_form(policy):
    ids = np.array([[1, 10], [2, 20], [1, 10]])
    y = np.array([4.0, 3.0, 2.0])
    frame = pd.DataFrame({"user": ids[:, 0], "item": ids[:, 1], "rating": y})
    for X, target in ((frame, None), (ids, y)):
        if policy == "error":
            with pytest.raises(ValueError, match=r"1 duplicate \(user, item\) pairs"):
                to_ratings(X, target, duplicates=policy)
        else:
            assert triples_of(to_ratings(X, target, duplicates=policy)) == [
                (1, 10, 2.0),
                (2, 20, 3.0),
            ]


def test_to_ratings_refuses_what_fit_cannot_read():
    with pytest.raises(ValueError, match=r"array of shape \(n, 2\).*got shape \(3, 3\)"):
        to_ratings(np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="got shape"):
        to_ratings(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="pass the ratings as y"):
        to_ratings(np.array([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="no column 'rating'"):
        to_ratings(pd.DataFrame({"user": [1], "item": [2]}))


def test_pairs_from_a_dataframe_and_an_array():
    frame = pd.DataFrame({"item": ["b", "a"], "user": [7, 8], "other": [0, 0]})
    users, items = pairs(frame)
    assert users.tolist() == [7, 8] and items.tolist() == ["b", "a"]
    users, items = pairs(np.array([[1, 2], [3, 4], [5, 6]]))
    assert users.tolist() == [1, 3, 5] and items.tolist() == [2, 4, 6]
    users, items = pairs([[1, 2]])
    assert users.tolist() == [1] and items.tolist() == [2]


def test_pairs_refuses_a_missing_column_or_a_wrong_shape():
    with pytest.raises(ValueError, match=r"no column 'item' \(its columns: \['user', 'x'\]\)"):
        pairs(pd.DataFrame({"user": [1], "x": [2]}))
    with pytest.raises(ValueError, match=r"shape \(n, 2\).*got \(2, 3\)"):
        pairs(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"got \(4,\)"):
        pairs(np.zeros(4))


def test_validation_frame_from_a_dataframe_or_a_tuple():
    frame = pd.DataFrame({"user": [1, 2], "item": [3, 4], "rating": [4.5, 1.0]})
    assert validation_frame(frame) is frame
    from_tuple = validation_frame((np.array([[1, 3], [2, 4]]), [4.5, 1.0]))
    pd.testing.assert_frame_equal(from_tuple, frame)
    from_frames = validation_frame((frame[["user", "item"]], frame["rating"].to_numpy()))
    pd.testing.assert_frame_equal(from_frames, frame)


@pytest.mark.parametrize(
    ("validation", "error", "match"),
    [
        (pd.DataFrame({"user": [1], "item": [2]}), ValueError, "needs a rating column"),
        ([np.zeros((1, 2)), [1.0]], TypeError, r"a tuple \(X_val, y_val\)"),
        ((np.zeros((1, 2)),), TypeError, "ratings DataFrame or a tuple"),
        (pd.DataFrame({"user": [], "item": [], "rating": []}), ValueError, "set is empty"),
        ((np.zeros((0, 2)), np.zeros(0)), ValueError, "set is empty"),
        ((np.zeros((2, 2)), [1.0, np.nan]), ValueError, "NaN or infinite"),
        (
            pd.DataFrame({"user": [1], "item": [2], "rating": [np.inf]}),
            ValueError,
            "NaN or infinite",
        ),
        ((np.zeros((2, 3)), [1.0, 2.0]), ValueError, r"shape \(n, 2\)"),
    ],
)
def test_validation_frame_refuses_bad_sets(validation, error, match):
    with pytest.raises(error, match=match):
        validation_frame(validation)
