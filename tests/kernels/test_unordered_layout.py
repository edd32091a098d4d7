"""The block layout built from ratings in any order (one scatter, then each block sorted in
cache) against numpy's layout of the same ratings, and its count of repeated pairs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf._kernels import jit
from fastmf._kernels import sorting as sk
from tests.kernels.test_sorting import _reference_layout


def _rows(n_rows, s, rng):
    """Rows numbered stratum by stratum (index order inside), each row's stratum, the starts."""
    of = rng.integers(0, s, n_rows)
    row = np.empty(n_rows, np.int32)
    row[np.lexsort((np.arange(n_rows), of))] = np.arange(n_rows, dtype=np.int32)
    starts = np.zeros(s + 1, np.int64)
    np.cumsum(np.bincount(of, minlength=s), out=starts[1:])
    return row, np.sort(of).astype(np.int32), starts


def _layout(users, items, values, n_users, n_items, s, seed):
    rng = np.random.default_rng(seed)
    user_row, u_stratum, u_starts = _rows(n_users, s, rng)
    item_row, i_stratum, i_starts = _rows(n_items, s, rng)
    outs = (np.empty(len(users), np.int32), np.empty(len(users), np.int32), np.empty_like(values))
    offsets, repeats = sk.unordered_layout_into(
        users, items, values, user_row, item_row, u_stratum, i_stratum, u_starts, i_starts, *outs
    )
    want = _reference_layout(users, items, values, user_row, item_row, u_stratum, i_stratum, s)
    return (*outs, offsets), want, repeats


def _distinct(n, n_users, n_items, rng):
    """n distinct (user, item) pairs in random order, with random ratings."""
    cells = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = (cells // n_items).astype(np.int32), (cells % n_items).astype(np.int32)
    return users, items, rng.random(n).astype(np.float32)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("n,s", [(0, 2), (2, 2), (500, 4), (30_000, 8)])
def test_distinct_ratings_in_any_order_get_the_reference_layout(monkeypatch, n, s, parallel):
    monkeypatch.setattr(jit, "SERIAL_BELOW", 0 if parallel else 1 << 62)
    rng = np.random.default_rng(n + s)
    n_users, n_items = max(3, n // 15), max(3, n // 25)
    got, want, repeats = _layout(*_distinct(n, n_users, n_items, rng), n_users, n_items, s, n)
    assert repeats == 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_sorted_input_gets_the_layout_of_block_layout():
    rng = np.random.default_rng(3)
    users, items, values = _distinct(5000, 200, 150, rng)
    order = np.lexsort((items, users))
    got, want, _ = _layout(users[order], items[order], values[order], 200, 150, 4, 1)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5)), min_size=1, max_size=200),
    st.integers(1, 3),
)
def test_repeats_count_the_rows_beyond_each_pairs_first(pairs, s):
    users = np.array([u for u, _ in pairs], np.int32)
    items = np.array([i for _, i in pairs], np.int32)
    values = np.arange(len(pairs), dtype=np.float32)
    got, want, repeats = _layout(users, items, values, 7, 6, s, len(pairs))
    distinct = len(set(pairs))
    assert repeats == len(pairs) - distinct
    if repeats == 0:
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    else:  # still every rating once, each in its block
        np.testing.assert_array_equal(np.sort(got[2]), values)
        np.testing.assert_array_equal(got[3], want[3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_values_keep_their_bits_packed_or_not(dtype):
    """Values with the sign bit set (a record's low word) and 8-byte values (no record) both
    get the reference layout, every value's bits kept."""
    rng = np.random.default_rng(11)
    users, items, values = _distinct(4000, 150, 120, rng)
    values = (values - 0.5).astype(dtype) * dtype(1e30)
    packed = sk.packs_records(values, np.array([0, 150]), np.array([0, 120]))
    assert packed == (dtype == np.float32)
    got, want, repeats = _layout(users, items, values, 150, 120, 4, 2)
    assert repeats == 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(np.sort(got[2].view(np.uint8)), np.sort(values.view(np.uint8)))


@pytest.mark.parametrize("limit", ["USER_LOCAL_ROWS", "ITEM_LOCAL_ROWS"])
def test_strata_too_large_for_a_record_get_the_same_layout(monkeypatch, limit):
    rng = np.random.default_rng(5)
    users, items, values = _distinct(3000, 120, 100, rng)
    want_got, want, _ = _layout(users, items, values, 120, 100, 2, 4)
    monkeypatch.setattr(sk, limit, 8)  # every stratum is larger: the three-array scatter
    assert not sk.packs_records(values, np.array([0, 60, 120]), np.array([0, 50, 100]))
    got, _, repeats = _layout(users, items, values, 120, 100, 2, 4)
    assert repeats == 0
    for g, w, r in zip(got, want, want_got, strict=True):
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(g, r)


def test_repeats_are_counted_in_packed_records():
    rng = np.random.default_rng(8)
    users, items, values = _distinct(2000, 90, 80, rng)
    extra = rng.choice(2000, size=37, replace=False)
    users, items = np.concatenate([users, users[extra]]), np.concatenate([items, items[extra]])
    values = np.concatenate([values, values[extra] + 1])
    *_, repeats = _layout(users, items, values, 90, 80, 4, 3)
    assert repeats == 37


def test_the_largest_strata_a_record_holds_keep_their_rows():
    """Strata of USER_LOCAL_ROWS and ITEM_LOCAL_ROWS rows, the last rows rated: local rows
    that use every bit of their field."""
    n_users, n_items = sk.USER_LOCAL_ROWS, sk.ITEM_LOCAL_ROWS
    rng = np.random.default_rng(9)
    users, items, values = _distinct(3000, n_users, n_items, rng)
    users[:2], items[:2] = [n_users - 1, 0], [0, n_items - 1]
    assert sk.packs_records(values, np.array([0, n_users]), np.array([0, n_items]))
    got, want, repeats = _layout(users, items, values, n_users, n_items, 1, 6)
    assert repeats == 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
