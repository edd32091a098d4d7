"""The ordering kernels against numpy's own sorting and counting."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf._kernels import sorting as sk


@pytest.mark.parametrize("n,n_keys", [(0, 3), (5, 1), (1000, 7), (100_003, 5000)])
def test_counting_sort_is_numpys_stable_argsort(n, n_keys):
    keys = np.random.default_rng(n).integers(0, n_keys, n).astype(np.int32)
    order, offsets = sk.stable_bucket_order(keys, n_keys)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    counts = np.bincount(keys, minlength=n_keys)
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(sk.key_counts(keys, n_keys), counts)


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
