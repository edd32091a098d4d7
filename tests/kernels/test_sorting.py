"""The ordering kernels against numpy's own sorting and counting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf._kernels import sorting as sk


@pytest.mark.parametrize("n,n_keys", [(0, 3), (5, 1), (1000, 7), (100_003, 5000)])
def test_counting_sort_is_numpys_stable_argsort(n, n_keys):
    keys = np.random.default_rng(n).integers(0, n_keys, n).astype(np.int32)
    order, offsets = sk.stable_bucket_order(keys, n_keys)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    counts = np.bincount(keys, minlength=n_keys)
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(sk.key_counts(keys, n_keys), counts)


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=300),
    n_threads=st.integers(1, 5),
    dtype=st.sampled_from([np.int32, np.int64]),
)
def test_the_range_of_ids_is_numpys_min_and_max(ids, n_threads, dtype):
    arr = np.array(ids, dtype=np.int64)
    arr = arr if dtype == np.int64 else (arr % 2**31 - 2**30).astype(np.int32)
    low, high = sk.int_range(arr, n_threads)
    assert (int(low), int(high)) == (int(arr.min()), int(arr.max()))


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.integers(0, 60), max_size=400),
    low=st.integers(-5, 5),
    n_threads=st.integers(1, 5),
)
def test_the_code_table_numbers_the_ids_that_occur_and_counts_them(ids, low, n_threads):
    arr = np.array(ids, dtype=np.int64) + low
    high = low + 60
    want, want_counts = np.unique(arr, return_counts=True)
    counted = sk.thread_counts(arr, np.int64(low), high - low + 1, n_threads)
    # the kernels (a large input's path) and numpy (a small one's) give the same table
    for table, uniques, counts in (
        sk.code_table(counted, np.int64(low)),
        sk.int_code_table(arr, np.int64(low), np.int64(high), n_threads),
    ):
        np.testing.assert_array_equal(uniques, want)
        np.testing.assert_array_equal(counts, want_counts)
        np.testing.assert_array_equal(table[arr - low], np.searchsorted(want, arr))
    np.testing.assert_array_equal(
        sk.thread_counts(arr, np.int64(low), high - low + 1, n_threads),
        np.bincount(arr - low, minlength=high - low + 1),
    )


def test_repeated_pairs_are_counted_while_sorting():
    users = np.array([2, 0, 2, 1, 0, 2, 0], np.int32)
    items = np.array([5, 3, 5, 4, 3, 1, 9], np.int32)  # (2, 5) twice, (0, 3) twice
    order, offsets = sk.stable_bucket_order(users, 3)
    assert sk.sort_segments_by_item(order, offsets, items) == 2
    np.testing.assert_array_equal(order, np.lexsort((np.arange(7), items, users)))


def test_unsorted_segments_are_sorted_and_sorted_ones_left_alone():
    values = np.array([1, 3, 2, 5, 6, 9, 8, 7], np.int32)
    sk.sort_unsorted_segments(values, np.array([0, 3, 5, 8]))
    np.testing.assert_array_equal(values, [1, 2, 3, 5, 6, 7, 8, 9])


def _triples(n, n_users, n_items, seed):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    values = rng.random(n).astype(np.float32)
    return users, items, values


@pytest.mark.parametrize(
    "n,n_users,n_items", [(0, 3, 3), (1, 1, 1), (500, 7, 11), (50_000, 900, 400)]
)
def test_sort_by_user_item_is_numpys_stable_lexsort(n, n_users, n_items):
    users, items, values = _triples(n, n_users, n_items, n)
    stamps = np.arange(n, dtype=np.int64) * 3 + 1
    u, i, v, ts, repeats = sk.sort_by_user_item(users, items, values, stamps, n_users, n_items)
    order = np.lexsort((np.arange(n), items, users))  # by user, item, then row
    np.testing.assert_array_equal(u, users[order])
    np.testing.assert_array_equal(i, items[order])
    np.testing.assert_array_equal(v, values[order])
    np.testing.assert_array_equal(ts, stamps[order])
    pairs = users.astype(np.int64) * n_items + items
    assert repeats == n - np.unique(pairs).size


def test_sort_by_user_item_without_extra_moves_none():
    users, items, values = _triples(1000, 30, 40, 1)
    u, i, v, ts, _ = sk.sort_by_user_item(users, items, values, np.empty(0, np.int64), 30, 40)
    assert ts.size == 0
    np.testing.assert_array_equal(u, np.sort(users))


def test_sorted_by_user_item_needs_strict_order_inside_each_user():
    users = np.array([0, 0, 1, 1, 2], np.int32)
    assert sk.sorted_by_user_item(users, np.array([1, 2, 0, 5, 0], np.int32))
    assert not sk.sorted_by_user_item(users, np.array([1, 1, 0, 5, 0], np.int32))  # a repeat
    assert not sk.sorted_by_user_item(users, np.array([2, 1, 0, 5, 0], np.int32))
    assert not sk.sorted_by_user_item(users[::-1].copy(), np.zeros(5, np.int32))
    big_u = np.repeat(np.arange(40_000, dtype=np.int32), 2)
    big_i = np.tile(np.array([0, 1], np.int32), 40_000)
    assert sk.sorted_by_user_item(big_u, big_i)
    big_i[-1] = 0  # the last piece's last row
    assert not sk.sorted_by_user_item(big_u, big_i)


def _reference_layout(users, items, values, user_row, item_row, u_stratum, i_stratum, s):
    """The block layout in numpy: rows relabelled, stably sorted by (block, user row, item
    row), then each block's three runs interleaved."""
    ru, ri = user_row[users], item_row[items]
    block = u_stratum[ru].astype(np.int64) * s + i_stratum[ri]
    order = np.lexsort((np.arange(len(users)), ri, ru, block))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(block, minlength=s * s))])
    out = [ru[order].copy(), ri[order].copy(), values[order].copy()]
    for b in range(s * s):
        lo, m = offsets[b], offsets[b + 1] - offsets[b]
        run = m // sk.STREAMS
        if run == 0:
            continue
        pos = []
        for rank in range(m):
            stream = min(rank // run, sk.STREAMS - 1)
            within = rank - stream * run
            pos.append(
                within * sk.STREAMS + stream if within < run else run * sk.STREAMS + within - run
            )
        for a in out:
            seg = a[lo : lo + m].copy()
            a[lo + np.array(pos, dtype=np.int64)] = seg
    return (*out, offsets)


@pytest.mark.parametrize("presorted", [True, False])
@pytest.mark.parametrize("n,s", [(10, 2), (3000, 4), (40_000, 8)])
def test_block_layout_is_the_numpy_reference(n, s, presorted):
    rng = np.random.default_rng(n + s)
    n_users, n_items = max(2, n // 20), max(2, n // 30)
    users, items, values = _triples(n, n_users, n_items, n)
    if presorted:  # what fit hands it: ratings in (user, item) order, each pair once
        keep = np.unique(users.astype(np.int64) * n_items + items, return_index=True)[1]
        users, items, values = users[keep], items[keep], values[keep]
    # rows numbered stratum by stratum, in index order inside each stratum
    u_of = rng.integers(0, s, n_users)
    i_of = rng.integers(0, s, n_items)
    user_row = np.empty(n_users, np.int32)
    user_row[np.lexsort((np.arange(n_users), u_of))] = np.arange(n_users, dtype=np.int32)
    item_row = np.empty(n_items, np.int32)
    item_row[np.lexsort((np.arange(n_items), i_of))] = np.arange(n_items, dtype=np.int32)
    u_stratum = np.sort(u_of).astype(np.int32)
    i_stratum = np.sort(i_of).astype(np.int32)
    args = (users, items, values, user_row, item_row, u_stratum, i_stratum, s)
    got = sk.block_layout(*args)
    want = _reference_layout(*args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    outs = (np.empty(len(users), np.int32), np.empty(len(users), np.int32), np.empty_like(values))
    np.testing.assert_array_equal(sk.block_layout_into(*args, *outs), want[3])
    for g, w in zip(outs, want[:3], strict=True):
        np.testing.assert_array_equal(g, w)
