"""The per-rating kernel's wide intrinsics (two W-lane chunks in one vector, from
``training.WIDE_FROM`` chunks on) against numpy, against the W-lane ones, and the bodies that use
them against the general body (the plain-numpy reference at an odd wide width:
``test_training_kernels.test_per_rating_sgd_epoch_matches_reference``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from fastmf._kernels import training as K
from fastmf._kernels.simd import (
    simd_shrink_and_swap,
    simd_wide_dot,
    simd_wide_shrink_and_swap,
)
from tests.kernels.test_training_kernels import _problem, _sqnorms


@njit
def _wide_dot(P, u, Q, i, n_chunks):
    """The dot product with a count known at run time only (the loop, not unrolled)."""
    return simd_wide_dot(P, u, Q, i, n_chunks)


_FIXED = {}


def _wide_dot_fixed(n_chunks):
    """The dot product compiled for a constant count (unrolled)."""
    if n_chunks not in _FIXED:

        @njit
        def dot(P, u, Q, i):
            return simd_wide_dot(P, u, Q, i, n_chunks)

        _FIXED[n_chunks] = dot
    return _FIXED[n_chunks]


@njit
def _steps(P, u, Q, i, c, s, n_chunks, wide):
    if wide:
        simd_wide_shrink_and_swap(P, u, Q, i, c, s, n_chunks)
    else:
        simd_shrink_and_swap(P, u, Q, i, c, s, n_chunks)


def _lanes(dtype):
    return 8 if np.dtype(dtype).itemsize == 4 else 4


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 8, 9, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_dot_matches_numpy_unrolled_or_not(n_chunks, dtype):
    rng = np.random.default_rng(n_chunks)
    k = n_chunks * _lanes(dtype) + 3  # columns past the chunks are not summed
    P = rng.normal(size=(3, k)).astype(dtype)
    Q = rng.normal(size=(4, k)).astype(dtype)
    got = _wide_dot(P, 1, Q, 2, n_chunks)
    m = n_chunks * _lanes(dtype)
    want = float(P[1, :m].astype(np.float64) @ Q[2, :m].astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert got == pytest.approx(want, rel=tol, abs=tol)
    # the unrolled loop adds in the same order as the loop
    assert _wide_dot_fixed(n_chunks)(P, 1, Q, 2) == got


@settings(max_examples=30, deadline=None)
@given(
    n_chunks=st.integers(1, 20),
    wide_first=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    c=st.floats(0.5, 1.0),
    s=st.floats(-0.5, 0.5),
    seed=st.integers(0, 2**16),
)
def test_wide_step_is_the_narrow_step_bit_for_bit(n_chunks, wide_first, dtype, c, s, seed):
    rng = np.random.default_rng(seed)
    k = n_chunks * _lanes(dtype) + 2
    P0 = rng.normal(size=(2, k)).astype(dtype)
    Q0 = rng.normal(size=(3, k)).astype(dtype)
    runs = []
    for wide in (wide_first, not wide_first):
        P, Q = P0.copy(), Q0.copy()
        _steps(P, 1, Q, 2, dtype(c), dtype(s), n_chunks, wide)
        runs.append((P, Q))
    (Pa, Qa), (Pb, Qb) = runs
    np.testing.assert_array_equal(Pa, Pb)
    np.testing.assert_array_equal(Qa, Qb)
    m = n_chunks * _lanes(dtype)
    p, q = P0[1].astype(np.float64), Q0[2].astype(np.float64)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(Pa[1, :m], (c * p + s * q)[:m], rtol=tol, atol=tol)
    np.testing.assert_allclose(Qa[2, :m], (c * q + s * p)[:m], rtol=tol, atol=tol)
    # the columns past the chunks and the other rows are left alone
    np.testing.assert_array_equal(Pa[1, m:], P0[1, m:])
    np.testing.assert_array_equal(Pa[0], P0[0])
    np.testing.assert_array_equal(Qa[[0, 1]], Q0[[0, 1]])


@pytest.mark.parametrize("dtype,k", [(np.float32, 128), (np.float64, 64)])
def test_wide_unrolled_sgd_body_equals_the_general_one_bit_for_bit(dtype, k):
    assert K.sgd_block.key(k, dtype) >= K.WIDE_FROM
    users, items, values, bu, bi, P, Q = _problem(n=350, k=k, seed=23, dtype=dtype)
    a = [x.copy() for x in (bu, bi, P, Q)] + [_sqnorms(P), _sqnorms(Q)]
    b = [x.copy() for x in (bu, bi, P, Q)] + [_sqnorms(P), _sqnorms(Q)]
    args = (users, items, values, dtype(3.4))
    rates = (dtype(0.02), dtype(0.05), dtype(0.01), True)
    la = K.sgd_block(0, len(values), *args, *a, *rates)
    lb = K.sgd_ratings(0, len(values), *args, *b, *rates, k // _lanes(dtype), False)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert la == lb
