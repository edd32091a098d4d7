"""The mini-batch kernel's wide intrinsics (two W-lane chunks in one vector, from
``training.WIDE_FROM`` chunks on) against numpy and against the W-lane ones, and the wide batch
bodies (64 and 128 float32 factors, 32 and 64 float64, an odd width of 9 chunks and 3 columns)
against the plain-numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from fastmf._kernels import minibatch
from fastmf._kernels.simd import simd_segment_gradient, simd_step_and_clear
from fastmf._kernels.simd_batch import (
    simd_wide_rating_pass,
    simd_wide_segment_dots,
    simd_wide_segment_gradient,
    simd_wide_sqnorm,
    simd_wide_step_and_clear,
)
from tests import reference as ref
from tests.kernels.test_batch_segments import OPTIMIZERS, _dense_problem
from tests.kernels.test_training_kernels import _block_order, _blocks, _run_batch_epoch


def _segments(test):
    """Hypothesis examples of a segment: n ratings over rows of n_chunks W-lane chunks."""
    return settings(max_examples=25, deadline=None)(
        given(
            n_chunks=st.integers(1, 19),
            n=st.integers(1, 6),
            dtype=st.sampled_from([np.float32, np.float64]),
            seed=st.integers(0, 2**16),
        )(test)
    )


def _lanes(dtype):
    return 8 if np.dtype(dtype).itemsize == 4 else 4


@njit
def _dots(P, u, Q, users, items, j0, step, stop, D, N, n_chunks):
    return simd_wide_segment_dots(P, u, Q, users, items, j0, step, stop, D, N, n_chunks)


_FIXED = {}


def _dots_fixed(n_chunks):
    """The segment's dot products compiled for a constant count (unrolled)."""
    if n_chunks not in _FIXED:

        @njit
        def dots(P, u, Q, users, items, j0, step, stop, D, N):
            return simd_wide_segment_dots(P, u, Q, users, items, j0, step, stop, D, N, n_chunks)

        _FIXED[n_chunks] = dots
    return _FIXED[n_chunks]


@njit
def _gradient(GU, su, GI, S, P, u, Q, items, j0, step, n, C, n_chunks, wide):
    if wide:
        simd_wide_segment_gradient(GU, su, GI, S, P, u, Q, items, j0, step, n, C, n_chunks)
    else:
        simd_segment_gradient(GU, su, GI, S, P, u, Q, items, j0, step, n, C, n_chunks)


@njit
def _step(X, r, G, s, c, a, n_chunks, wide):
    if wide:
        simd_wide_step_and_clear(X, r, G, s, c, a, n_chunks)
    else:
        simd_step_and_clear(X, r, G, s, c, a, n_chunks)


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 5, 8, 9, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_segment_dots_match_numpy_unrolled_or_not(n_chunks, dtype):
    rng = np.random.default_rng(n_chunks)
    k = n_chunks * _lanes(dtype) + 3  # columns past the chunks are not summed
    P = rng.normal(size=(3, k)).astype(dtype)
    Q = rng.normal(size=(9, k)).astype(dtype)
    # user 1's segment at 0, 3, 6, 9 (step 3): the rating at 12 is another user's
    users = np.array([1, 0, 2, 1, 0, 2, 1, 2, 0, 1, 0, 0, 2, 1], np.int32)
    items = np.array([4, 0, 1, 7, 2, 3, 2, 5, 6, 8, 1, 1, 0, 3], np.int32)
    D, N = np.zeros(6, dtype), np.zeros(6, dtype)
    sp, n = _dots(P, 1, Q, users, items, 0, 3, len(users), D, N, n_chunks)
    assert n == 4
    m = n_chunks * _lanes(dtype)
    p = P[1, :m].astype(np.float64)
    q = Q[items[[0, 3, 6, 9]], :m].astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(D[:n], q @ p, rtol=tol, atol=tol)
    np.testing.assert_allclose(N[:n], (q * q).sum(axis=1), rtol=tol, atol=tol)
    assert sp == pytest.approx(float(p @ p), rel=tol)
    # the segment stops at the end given, and the unrolled loop adds in the same order
    D2, N2 = np.zeros(6, dtype), np.zeros(6, dtype)
    sp2, n2 = _dots_fixed(n_chunks)(P, 1, Q, users, items, 0, 3, 7, D2, N2)
    assert n2 == 3 and sp2 == sp
    np.testing.assert_array_equal(D2[:3], D[:3])
    np.testing.assert_array_equal(N2[:3], N[:3])


@_segments
def test_wide_segment_gradient_is_the_narrow_one_bit_for_bit(n_chunks, n, dtype, seed):
    rng = np.random.default_rng(seed)
    k = n_chunks * _lanes(dtype) + 2
    P = rng.normal(size=(3, k)).astype(dtype)
    Q = rng.normal(size=(8, k)).astype(dtype)
    items = rng.integers(0, 8, 2 * n + 1).astype(np.int32)
    S = rng.integers(0, 4, n).astype(np.intp)  # slots may repeat
    C = rng.normal(size=n).astype(dtype)
    GU0 = rng.normal(size=(3, k)).astype(dtype)
    GI0 = rng.normal(size=(4, k)).astype(dtype)
    runs = []
    for wide in (True, False):
        GU, GI = GU0.copy(), GI0.copy()
        _gradient(GU, 2, GI, S, P, 1, Q, items, 1, 2, n, C, n_chunks, wide)
        runs.append((GU, GI))
    (GUa, GIa), (GUb, GIb) = runs
    np.testing.assert_array_equal(GUa, GUb)
    np.testing.assert_array_equal(GIa, GIb)
    m = n_chunks * _lanes(dtype)
    q = Q[items[1 : 1 + 2 * n : 2], :m].astype(np.float64)
    want_u = GU0[2, :m] + C.astype(np.float64) @ q
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(GUa[2, :m], want_u, rtol=tol, atol=tol)
    want_i = GI0[:, :m].astype(np.float64)
    for c, s in zip(C, S, strict=True):
        want_i[s] += float(c) * P[1, :m]
    np.testing.assert_allclose(GIa[:, :m], want_i, rtol=tol, atol=tol)
    np.testing.assert_array_equal(GUa[2, m:], GU0[2, m:])  # the columns past the chunks
    np.testing.assert_array_equal(GIa[:, m:], GI0[:, m:])


@settings(max_examples=25, deadline=None)
@given(
    n_chunks=st.integers(1, 19),
    dtype=st.sampled_from([np.float32, np.float64]),
    c=st.floats(0.5, 1.0),
    a=st.floats(-0.5, 0.5),
    seed=st.integers(0, 2**16),
)
def test_wide_step_and_clear_is_the_narrow_one_bit_for_bit(n_chunks, dtype, c, a, seed):
    rng = np.random.default_rng(seed)
    k = n_chunks * _lanes(dtype) + 1
    X0 = rng.normal(size=(3, k)).astype(dtype)
    G0 = rng.normal(size=(2, k)).astype(dtype)
    runs = []
    for wide in (True, False):
        X, G = X0.copy(), G0.copy()
        _step(X, 2, G, 1, dtype(c), dtype(a), n_chunks, wide)
        runs.append((X, G))
    (Xa, Ga), (Xb, Gb) = runs
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(Ga, Gb)
    m = n_chunks * _lanes(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    want = c * X0[2, :m].astype(np.float64) + a * G0[1, :m]
    np.testing.assert_allclose(Xa[2, :m], want, rtol=tol, atol=tol)
    assert not Ga[1, :m].any()
    np.testing.assert_array_equal(Ga[1, m:], G0[1, m:])
    np.testing.assert_array_equal(Xa[[0, 1]], X0[[0, 1]])
    np.testing.assert_array_equal(Ga[0], G0[0])


@njit(inline="always")
def _rating_by_rating(GU, su, GI, S, P, u, Q, items, j0, step, n, R, N, n_chunks):
    """The segment as ``minibatch.batch_run_wide`` takes it: one rating at a time, ‖p_u‖² from
    ``simd_wide_sqnorm``, e and ‖q_i‖² from ``simd_wide_rating_pass``, into R and N."""
    sp = simd_wide_sqnorm(P, u, n_chunks)
    for m in range(n):
        i = items[j0 + m * step]
        R[m], N[m] = simd_wide_rating_pass(GU, su, GI, S[m], P, u, Q, i, R[m], n_chunks)
    return sp


@njit
def _rating_pass(GU, su, GI, S, P, u, Q, items, j0, step, n, R, N, n_chunks):
    return _rating_by_rating(GU, su, GI, S, P, u, Q, items, j0, step, n, R, N, n_chunks)


_RATING_PASS_FIXED = {}


def _rating_pass_fixed(n_chunks):
    """The rating-by-rating pass compiled for a constant count (unrolled)."""
    if n_chunks not in _RATING_PASS_FIXED:

        @njit
        def rating_pass(GU, su, GI, S, P, u, Q, items, j0, step, n, R, N):
            return _rating_by_rating(GU, su, GI, S, P, u, Q, items, j0, step, n, R, N, n_chunks)

        _RATING_PASS_FIXED[n_chunks] = rating_pass
    return _RATING_PASS_FIXED[n_chunks]


@njit
def _two_passes(GU, su, GI, S, P, u, Q, users, items, j0, step, stop, R, N, n_chunks):
    """The segment as ``minibatch.batch_segment`` takes it: the dots, e, then the gradient."""
    D = np.zeros_like(R)
    sp, n = simd_wide_segment_dots(P, u, Q, users, items, j0, step, stop, D, N, n_chunks)
    C = np.zeros_like(R)
    for m in range(n):
        R[m] = R[m] - D[m]
        C[m] = -(R[m] + R[m])
    simd_wide_segment_gradient(GU, su, GI, S, P, u, Q, items, j0, step, n, C, n_chunks)
    return sp, n


def _segment_case(n_chunks, n, dtype, seed):
    """A segment of n ratings of user 1 at 1, 3, ... (step 2), and the arrays it writes."""
    rng = np.random.default_rng(seed)
    k = n_chunks * _lanes(dtype) + 2  # columns past the chunks are left alone
    P = rng.normal(size=(3, k)).astype(dtype)
    Q = rng.normal(size=(8, k)).astype(dtype)
    users = np.zeros(2 * n + 2, np.int32)
    users[1 : 2 * n + 1 : 2] = 1  # position 2n + 1 is user 0's: the segment ends there
    items = rng.integers(0, 8, 2 * n + 2).astype(np.int32)
    S = rng.integers(0, 4, n).astype(np.intp)  # slots may repeat
    R = rng.normal(size=n).astype(dtype)
    GU = rng.normal(size=(3, k)).astype(dtype)
    GI = rng.normal(size=(4, k)).astype(dtype)
    return P, Q, users, items, S, R, GU, GI


@_segments
def test_rating_by_rating_is_the_segment_passes_bit_for_bit(n_chunks, n, dtype, seed):
    P, Q, users, items, S, R0, GU0, GI0 = _segment_case(n_chunks, n, dtype, seed)
    GU, GI, R, N = GU0.copy(), GI0.copy(), R0.copy(), np.zeros(n, dtype)
    sp = _rating_pass(GU, 2, GI, S, P, 1, Q, items, 1, 2, n, R, N, n_chunks)
    GU2, GI2, R2, N2 = GU0.copy(), GI0.copy(), R0.copy(), np.zeros(n, dtype)
    sp2, n2 = _two_passes(GU2, 2, GI2, S, P, 1, Q, users, items, 1, 2, len(users), R2, N2,
                          n_chunks)  # fmt: skip
    assert n2 == n and sp == sp2
    for got, want in ((GU, GU2), (GI, GI2), (R, R2), (N, N2)):
        np.testing.assert_array_equal(got, want)
    # and against numpy: e = R − p·q, ‖q‖², the two gradients, the columns past the chunks
    m = n_chunks * _lanes(dtype)
    p = P[1, :m].astype(np.float64)
    q = Q[items[1 : 2 * n : 2], :m].astype(np.float64)
    e = R0 - q @ p
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(R, e, rtol=tol, atol=tol)
    np.testing.assert_allclose(N, (q * q).sum(axis=1), rtol=tol, atol=tol)
    assert sp == pytest.approx(float(p @ p), rel=tol)
    np.testing.assert_allclose(GU[2, :m], GU0[2, :m] + (-2 * e) @ q, rtol=tol, atol=tol)
    want_i = GI0[:, :m].astype(np.float64)
    for c, s in zip(-2 * e, S, strict=True):
        want_i[s] += c * p
    np.testing.assert_allclose(GI[:, :m], want_i, rtol=tol, atol=tol)
    np.testing.assert_array_equal(GU[:, m:], GU0[:, m:])
    np.testing.assert_array_equal(GI[:, m:], GI0[:, m:])
    np.testing.assert_array_equal(GU[[0, 1]], GU0[[0, 1]])


@pytest.mark.parametrize("n_chunks", [8, 9, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rating_by_rating_unrolled_is_the_general_one(n_chunks, dtype):
    n = 5
    P, Q, users, items, S, R0, GU0, GI0 = _segment_case(n_chunks, n, dtype, n_chunks)
    runs = []
    for fixed in (True, False):
        GU, GI, R, N = GU0.copy(), GI0.copy(), R0.copy(), np.zeros(n, dtype)
        args = (GU, 2, GI, S, P, 1, Q, items, 1, 2, n, R, N)
        sp = _rating_pass_fixed(n_chunks)(*args) if fixed else _rating_pass(*args, n_chunks)
        runs.append((sp, GU, GI, R, N))
    assert runs[0][0] == runs[1][0]
    for got, want in zip(runs[0][1:], runs[1][1:], strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(runs[0][1], GU0)  # it gathered


WIDE_WIDTHS = [
    (np.float32, 64),  # the 8-chunk body
    (np.float32, 128),  # the 16-chunk body
    (np.float32, 9 * 8),  # the general body's one loop a run, an odd chunk left over
    (np.float64, 9 * 4),
    (np.float32, 9 * 8 + 3),  # the general body: 9 chunks (an odd one left over) + 3 columns
    (np.float64, 9 * 4 + 3),
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype,k", WIDE_WIDTHS)
def test_wide_batch_bodies_match_reference(dtype, k, optimizer):
    # float64 at 32, 64 and 128 factors: tests/kernels/test_batch_segments.py
    assert k // _lanes(dtype) >= minibatch.WIDE_FROM
    users, items, values, bu, bi, P, Q = _dense_problem(k, seed=k)
    bu, bi, P, Q = (x.astype(dtype) for x in (bu, bi, P, Q))
    blocks, _, _ = _blocks(users, items, values, 12, 40, n_strata=2, n_workers=2)
    mu, lr, lam, lam_b = 3.0, 0.03, 0.05, 0.01
    shift_order = np.array([1, 0])
    P0 = P.copy()
    want = [x.astype(np.float64) for x in (bu, bi, P, Q)]
    opt = ref.ReferenceOptimizer(optimizer, [x.shape for x in want], lr)
    ref_losses = ref.train_in_order(
        blocks.users, blocks.items, blocks.values.astype(np.float64), 24, mu, *want, lam,
        lam_b, opt, blocks.block_offsets, _block_order(blocks, shift_order),
    )  # fmt: skip
    losses = _run_batch_epoch(blocks, 24, dtype(mu), bu, bi, P, Q, dtype(lr), dtype(lam),
                              dtype(lam_b), optimizer, shift_order)  # fmt: skip
    assert not np.allclose(P, P0)  # it trained
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for got, expected in zip((bu, bi, P, Q), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(losses, ref_losses, rtol=tol)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype,k", [(np.float32, 64), (np.float32, 72), (np.float64, 32)])
def test_the_carried_user_norms_are_each_rows_own(dtype, k, optimizer):
    """``batch_block`` keeps ``NU[u]`` = ‖p_u‖² up to date at every step of the row, so norms
    known before the call give the same model as norms summed at each row's first rating, and
    after it each touched row's norm is its new row's."""
    from tests.kernels.test_training_kernels import _block_inputs, _problem

    users, items, values, bu, bi, P, Q = _problem(n=300, k=k, seed=k, dtype=dtype)
    runs = []
    for known in (False, True):
        params = [x.copy() for x in (bu, bi, P, Q)]
        state, scratch, NU = _block_inputs(optimizer, params, 32)
        if known:
            NU[:] = [_sqnorm(params[2], u, k // _lanes(dtype)) for u in range(P.shape[0])]
        losses = minibatch.batch_block(
            0, len(values), 32, users, items, values, dtype(3.4), *params, NU, dtype(0.05),
            dtype(0.05), dtype(0.01), True, minibatch.OPTIMIZER_CODES[optimizer], *state, *scratch,
        )  # fmt: skip
        runs.append((params, losses, NU))
    (pa, la, na), (pb, lb, nb) = runs
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(x, y)
    assert la == lb
    assert not np.array_equal(pa[2], P)  # it trained
    touched = np.unique(users)
    assert (na[touched] >= 0).all()
    new = [_sqnorm(pa[2], u, k // _lanes(dtype)) for u in touched]
    np.testing.assert_array_equal(na[touched], new)  # the stepped rows' own norms
    np.testing.assert_array_equal(nb[touched], new)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(new, (pa[2][touched].astype(np.float64) ** 2).sum(axis=1),
                               rtol=tol)  # fmt: skip


@njit
def _sqnorm_of(X, r, n_chunks):
    return simd_wide_sqnorm(X, r, n_chunks)


def _sqnorm(X, r, n_chunks):
    return _sqnorm_of(X, r, n_chunks)
