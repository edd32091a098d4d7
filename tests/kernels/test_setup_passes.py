"""The setup passes of a fit against numpy: integer ids' codes, the strata's row numbering, the
interleaved position of a rating, and the layout's row check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf._kernels import sorting as sk
from fastmf.data.blocks import Strata, balanced_strata
from fastmf.data.ids import factorize_ids
from fastmf.train.layout import schedule_of


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64, np.uint64])
def test_factorize_ids_of_every_integer_width_is_numpys_unique(dtype):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 100, 5000).astype(dtype) + dtype(3)
    codes, idmap = factorize_ids(raw, column="user")
    uniques, inverse = np.unique(raw, return_inverse=True)
    np.testing.assert_array_equal(codes, inverse)
    np.testing.assert_array_equal(idmap.ids, uniques)


def _reference_strata(counts, s):
    """Snake-order strata from the most rated down, rows renumbered stratum-major with numpy's
    lexsort (the formula of ``balanced_strata``)."""
    n = counts.shape[0]
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(n)
    lap, slot = np.divmod(rank, s)
    stratum = np.where(lap % 2 == 0, slot, s - 1 - slot)
    position = np.empty(n, dtype=np.int32)
    position[np.lexsort((np.arange(n), stratum))] = np.arange(n, dtype=np.int32)
    return position, np.concatenate([[0], np.cumsum(np.bincount(stratum, minlength=s))])


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 50) | st.integers(30_000, 40_000), min_size=1, max_size=300),
    s=st.integers(1, 40),
)
def test_balanced_strata_number_rows_as_the_lexsort(counts, s):
    c = np.array(counts, dtype=np.int64)
    position, strata = balanced_strata(c, s)
    want_pos, want_starts = _reference_strata(c, s)
    np.testing.assert_array_equal(position, want_pos)
    np.testing.assert_array_equal(strata.starts, want_starts)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 20), min_size=1, max_size=12), extra=st.integers(-3, 3))
def test_the_stratum_of_each_row_is_the_search_of_the_starts(sizes, extra):
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_rows = max(0, int(starts[-1]) + extra)
    want = np.searchsorted(starts, np.arange(n_rows), side="right") - 1
    got = Strata(starts).of_rows(n_rows)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_interleaved_positions_are_the_division_formula():
    for m in range(0, 40):
        run = m // sk.STREAMS
        got = [sk.interleaved_position(rank, m, sk.STREAMS) for rank in range(m)]
        want = []
        for rank in range(m):
            if run == 0:
                want.append(rank)
                continue
            stream = min(rank // run, sk.STREAMS - 1)
            within = rank - stream * run
            want.append(within * sk.STREAMS + stream if within < run else run * 3 + within - run)
        assert got == want
        assert sorted(got) == list(range(m))  # a permutation of the block


def test_the_row_check_reads_the_maps_when_given():
    users = np.array([0, 1, 2, 1], np.int32)
    items = np.array([0, 0, 1, 1], np.int32)
    laid = (users, items, np.ones(4, np.float32), np.array([0, 4], np.int64))
    ok = schedule_of(laid, 1, 3, 2, 1, row_maps=(np.array([2, 0, 1]), np.array([1, 0])))
    assert (ok.user_rows_below, ok.item_rows_below) == (3, 2)
    with pytest.raises(ValueError, match="user rows outside 0..2"):
        schedule_of(laid, 1, 3, 2, 1, row_maps=(np.array([2, 0, 3]), np.array([1, 0])))
    with pytest.raises(ValueError, match="item rows outside 0..1"):
        schedule_of(laid, 1, 3, 2, 1, row_maps=(np.array([2, 0, 1]), np.array([-1, 0])))
    with pytest.raises(ValueError, match="user rows outside 0..1"):  # the layout itself
        schedule_of(laid, 1, 2, 2, 1)
