"""Cache-line-aligned arrays for the kernels' factor matrices."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf.train.aligned import CACHE_LINE, aligned_empty, aligned_zeros, cache_aligned


@pytest.mark.parametrize(
    "shape,dtype", [((7, 64), np.float32), ((3, 5), np.float64), (11, np.int32)]
)
def test_new_arrays_start_on_a_cache_line(shape, dtype):
    for make in (aligned_empty, aligned_zeros):
        a = make(shape, dtype)
        assert a.ctypes.data % CACHE_LINE == 0
        assert a.shape == np.empty(shape).shape and a.dtype == dtype and a.flags.c_contiguous
    assert not aligned_zeros(shape, dtype).any()


def test_cache_aligned_copies_only_when_it_must():
    base = aligned_zeros(4 * 64 + 4, np.float32)
    off = base[4:].reshape(4, 64)  # 16 bytes past a cache line
    off[...] = np.arange(256).reshape(4, 64)
    assert off.ctypes.data % CACHE_LINE == 16
    fixed = cache_aligned(off)
    assert fixed.ctypes.data % CACHE_LINE == 0
    np.testing.assert_array_equal(fixed, off)
    assert cache_aligned(fixed) is fixed


def test_fit_leaves_factors_on_cache_lines(small_ratings):
    from fastmf import MatrixFactorization

    m = MatrixFactorization(n_factors=16, n_epochs=1, verbose=0, random_state=0)
    m.fit(small_ratings)
    m.user_factors_ = m.user_factors_[:, :].copy(order="F")  # as a user might set it
    m.partial_fit(small_ratings)
    for a in (m.user_factors_, m.item_factors_):
        assert a.ctypes.data % CACHE_LINE == 0 and a.flags.c_contiguous
