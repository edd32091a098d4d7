"""Ratings from raw ids: (user, item) order, duplicates, and the id codes, against pandas.

The reference is pandas: ids coded in sorted order (``pd.factorize(sort=True)``), rows sorted
stably by (user code, item code), and for ``duplicates="last"`` the last row of each pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import Ratings
from fastmf.data.ids import factorize_ids


def reference(users, items, values, stamps=None, keep_last=False):
    """(user codes, item codes, values, stamps) as pandas orders and dedupes them."""
    u_codes = pd.factorize(pd.Series(users), sort=True)[0]
    i_codes = pd.factorize(pd.Series(items), sort=True)[0]
    frame = pd.DataFrame({"u": u_codes, "i": i_codes, "v": values, "row": np.arange(len(users))})
    if stamps is not None:
        frame["t"] = stamps
    if keep_last:
        frame = frame.drop_duplicates(["u", "i"], keep="last")
    frame = frame.sort_values(["u", "i", "row"], kind="stable")
    return frame


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-5, 40), st.integers(0, 25), st.integers(1, 10)),
        min_size=1,
        max_size=200,
    ),
    st.sampled_from(["int32", "int64", "sparse", "str"]),
)
def test_last_policy_matches_pandas(rows, kind):
    users = np.array([r[0] for r in rows])
    items = np.array([r[1] for r in rows])
    values = np.array([r[2] for r in rows], dtype=np.float32) / 2
    stamps = np.arange(len(rows), dtype=np.int64) * 7
    if kind == "int32":
        users, items = users.astype(np.int32), items.astype(np.int32)
    elif kind == "sparse":  # too spread for a table: hashed, then sorted
        users, items = users * 10**12 + 3, items * 10**13
    elif kind == "str":
        users, items = users.astype(str).astype(object), items.astype(str).astype(object)
    got = Ratings.from_arrays(users, items, values, stamps, duplicates="last")
    want = reference(users, items, values, stamps, keep_last=True)
    np.testing.assert_array_equal(got.users, want["u"])
    np.testing.assert_array_equal(got.items, want["i"])
    np.testing.assert_array_equal(got.values, want["v"])
    np.testing.assert_array_equal(got.timestamps, want["t"])
    assert list(got.user_map.ids) == sorted(set(users.tolist()))


def test_duplicates_error_names_the_first_pair_and_its_rows():
    users = np.array([3, 1, 3, 1, 2, 1], np.int32)
    items = np.array([7, 5, 7, 5, 1, 5], np.int32)
    with pytest.raises(ValueError, match=r"3 duplicate \(user, item\) pairs: the pair \(1, 5\) "):
        Ratings.from_arrays(users, items, np.ones(6))
    with pytest.raises(ValueError, match=r"is at rows 1 and 5; pass duplicates='last'"):
        Ratings.from_arrays(users, items, np.ones(6))


def test_ratings_never_share_memory_with_the_input():
    users = np.arange(5, dtype=np.int32)  # already sorted and dense: the codes are the ids
    items = np.zeros(5, dtype=np.int32)
    values = np.arange(5, dtype=np.float32)
    r = Ratings.from_arrays(users, items, values)
    for got, given_ in ((r.users, users), (r.items, items), (r.values, values)):
        np.testing.assert_array_equal(got, given_)
        assert not np.may_share_memory(got, given_)
    shuffled = Ratings.from_arrays(users[::-1].copy(), items, values[::-1].copy())
    np.testing.assert_array_equal(shuffled.values, values)


@pytest.mark.parametrize("copy", [True, False])
def test_dense_int32_ids_are_their_own_codes_only_without_copy(copy):
    ids = np.random.default_rng(0).permutation(1000).astype(np.int32)
    codes, id_map = factorize_ids(ids, column="user", copy=copy)
    np.testing.assert_array_equal(codes, ids)
    np.testing.assert_array_equal(id_map.ids, np.arange(1000))
    assert (codes is ids) is (not copy)


@pytest.mark.parametrize(
    "ids",
    [
        np.array([10**15, 5, 10**15, -(10**14), 5], dtype=np.int64),
        np.array([2**64 - 1, 3, 2**63, 3], dtype=np.uint64),
        np.array([40, 2, 9, 2, 40], dtype=np.int16),
    ],
)
def test_codes_are_the_rank_of_each_id(ids):
    codes, id_map = factorize_ids(ids, column="item")
    uniques = np.unique(ids)
    np.testing.assert_array_equal(id_map.ids, uniques)
    np.testing.assert_array_equal(codes, np.searchsorted(uniques, ids))
    assert codes.dtype == np.int32
