"""Per-rating training and prediction kernels of the biased matrix-factorization model.

Legend: ``mu`` global mean, ``bu``/``bi`` user/item biases, ``P``/``Q`` user/item factors (one row
per user or item), ``lr`` learning rate η, ``lam`` the factor penalty λ (``reg``), ``lam_b`` the
bias penalty (``reg_bias``). Per-rating SGD (batch size 1) steps on each rating's own

    L = (r − r̂)²  +  λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²)

in the block's order; ``minibatch`` holds the kernels for larger batches. Every kernel sees
arrays and scalars only.

Race policy: the epoch kernels run the blocks of one sub-epoch in parallel. Those blocks share no
user and no item (see ``_schedule``), so every row of ``bu``, ``bi``, ``P``, ``Q`` and of the
optimizer state is written by one thread at a time, and each block writes its own rows of
``point_losses``. Within a block the order of ratings is fixed, and every sum is taken in the order
the source gives (eight explicit lanes, no reassociation), so the result is bit for bit the same
with any number of threads and in every compile.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastmf._kernels.jit import JIT, JIT_INLINE, sized_kernel, width_kernel
from fastmf._kernels.simd import (
    cast_like,
    fma,
    prefetch_row,
    simd_dot,
    simd_dot_sqnorm,
    simd_shrink_and_swap,
    simd_wide_dot,
    simd_wide_shrink_and_swap,
)

PREFETCH_AHEAD = 16  # ratings ahead whose rows are prefetched (measured best of 4 to 64)
# the distance for rows under ``WIDE_FROM`` chunks: a short row's rating takes less time, so the
# same memory latency needs more ratings ahead
NARROW_PREFETCH_AHEAD = 32

# The chunk counts (of W lanes) whose per-rating bodies are compiled for their width, every loop
# over the row unrolled; other widths share the general body. Each width's epoch kernel is a
# variant of its own (``jit.width_kernel``), compiled on its first call: a fit compiles its own
# width's body only. ``CHUNKS`` is the variant's count, a constant of its scope (0 here and in
# the general body, which takes the width at run time).
SGD_UNROLLED = frozenset({2, 4, 8, 16})
# From this many chunks (rows of 256 bytes: 64 float32 factors, 32 float64) the per-rating body
# works in vectors of two chunks (512 bits, ``simd_wide_*``): 15% faster at 64 float32 factors,
# a third at 128; at 32 factors 3% slower, so shorter rows keep W lanes. The choice depends on
# the width alone, the same in every body, so every body of one width gives the same bits.
WIDE_FROM = 8
# From this many chunks the per-rating body carries each row's squared norm from step to step
# (three scalar fused multiply-adds a rating, in float64); shorter rows sum ‖p_u‖² + ‖q_i‖² with
# the dot product, in its W lanes (two vector FMAs a chunk): at 32 float32 factors 8% faster
# than the carry. Like ``WIDE_FROM``, a choice of the width alone; it changes the loss only.
CARRY_NORMS_FROM = 8
CHUNKS = 0


@njit(**JIT_INLINE)
def lanes_of(P):
    """W for the dtype of P (the intrinsics' vector width)."""
    return 8 if P.itemsize == 4 else 4


@njit(**JIT_INLINE)
def chunked_dot_and_sqnorm(P, u, Q, i, n_chunks, has_rest):
    """p_u·q_i and ‖p_u‖² + ‖q_i‖²: W lanes over n_chunks whole chunks, then, when
    ``has_rest``, the columns left over, in order."""
    d, sq = simd_dot_sqnorm(P, u, Q, i, n_chunks)
    if has_rest:
        for f in range(n_chunks * lanes_of(P), P.shape[1]):
            d += P[u, f] * Q[i, f]
            sq += P[u, f] * P[u, f] + Q[i, f] * Q[i, f]
    return d, sq


@njit(**JIT_INLINE)
def dot_and_sqnorm(P, u, Q, i):
    """``chunked_dot_and_sqnorm`` for any width: whole chunks, then the rest."""
    return chunked_dot_and_sqnorm(P, u, Q, i, P.shape[1] // lanes_of(P), True)


@njit(**JIT_INLINE)
def dot(P, u, Q, i):
    """p_u·q_i summed as in ``dot_and_sqnorm``."""
    return dot_and_sqnorm(P, u, Q, i)[0]


@njit(**JIT_INLINE)
def sgd_ratings(
    lo, hi, users, items, values, mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b, learn_bias, n_chunks,
    has_rest,
):  # fmt: skip
    """The body of ``sgd_block``: the row is n_chunks SIMD chunks, plus the columns left over
    when ``has_rest``."""
    k = P.shape[1]
    W = lanes_of(P)
    base = 0.0
    regl = 0.0
    step = lr + lr
    shrink = 1 - step * lam
    carry = n_chunks >= CARRY_NORMS_FROM
    # the biases' step, 0 when they are not learned: a store of the same value a rating is
    # cheaper than the test of ``learn_bias`` (4% at 32 factors), and the same bits
    step_b = step if learn_bias else step - step
    # every index unsigned, the rating's and the rows' (all checked before any kernel runs):
    # Numba then emits no test for a negative index, 30 instructions a rating fewer
    end = np.uint64(max(hi, 0))
    ahead = np.uint64(PREFETCH_AHEAD if n_chunks >= WIDE_FROM else NARROW_PREFETCH_AHEAD)
    for j in range(np.uint64(max(lo, 0)), end):
        u = np.uint32(users[j])
        i = np.uint32(items[j])
        if j + ahead < end:
            # both rows, at every rating: a test for a new user (whose row alone needs it) is a
            # branch taken about one rating in four that the processor cannot foresee, and cost
            # more than the prefetches it saves
            prefetch_row(P, users[j + ahead], n_chunks)
            prefetch_row(Q, items[j + ahead], n_chunks)
        b_u = bu[u]
        b_i = bi[i]
        n_u = NU[u]
        n_i = NI[i]
        if carry:  # a constant in the unrolled bodies, as the tests of n_chunks below
            if n_u < 0:  # not yet known (``sgd_epoch``): the row's first rating this epoch
                n_u = cast_like(chunked_dot_and_sqnorm(P, u, P, u, n_chunks, has_rest)[0], n_u)
            if n_i < 0:
                n_i = cast_like(chunked_dot_and_sqnorm(Q, i, Q, i, n_chunks, has_rest)[0], n_i)
        # the part of the error that does not wait for the dot product
        r0 = values[j] - mu - b_u - b_i
        if n_chunks >= WIDE_FROM:  # a constant in the unrolled bodies: the test is compiled out
            d = simd_wide_dot(P, u, Q, i, n_chunks)
            sq = d
        elif carry:
            d = simd_dot(P, u, Q, i, n_chunks)
            sq = d
        else:
            d, sq = simd_dot_sqnorm(P, u, Q, i, n_chunks)
        if has_rest:
            for f in range(n_chunks * W, k):
                d += P[u, f] * Q[i, f]
                sq += P[u, f] * P[u, f] + Q[i, f] * Q[i, f]
        e = r0 - d
        base += e * e
        if carry:
            pen = lam * (n_u + n_i)
        else:
            pen = cast_like(lam * sq, n_u)
        regl += pen + lam_b * (b_u * b_u + b_i * b_i)
        se = step * e
        # the factors step first, with no store in between, so the rows the dot product loaded
        # are still in registers
        if n_chunks >= WIDE_FROM:
            simd_wide_shrink_and_swap(P, u, Q, i, shrink, se, n_chunks)
        else:
            simd_shrink_and_swap(P, u, Q, i, shrink, se, n_chunks)
        if has_rest:
            for f in range(n_chunks * W, k):
                pf = P[u, f]
                qf = Q[i, f]
                P[u, f] = shrink * pf + se * qf
                Q[i, f] = shrink * qf + se * pf
        # the new squared norms, ‖c·p + s·q‖² = c²‖p‖² + 2cs·p·q + s²‖q‖², in float64 from the
        # step's own c and s (as the intrinsic rounds them to the rows' dtype)
        if carry:
            c = cast_like(cast_like(shrink, d), n_u)
            s = cast_like(cast_like(se, d), n_u)
            cd2 = (c + c) * cast_like(d, n_u)
            NU[u] = fma(c * c, n_u, s * fma(s, n_i, cd2))
            NI[i] = fma(c * c, n_i, s * fma(s, n_u, cd2))
        bu[u] = b_u + step_b * (e - lam_b * b_u)
        bi[i] = b_i + step_b * (e - lam_b * b_i)
    return base, regl


@njit(**JIT_INLINE)
def row_sqnorms(X, N, r):
    """N[r] = ‖x_r‖², summed as ``dot`` sums."""
    N[r] = dot(X, r, X, r)


@njit(**JIT_INLINE)
def every_row_sqnorm(P, Q):
    """(‖p_u‖² for every u, ‖q_i‖² for every i) in float64, each row's summed on its own (so
    the same whatever cuts the rows into blocks), serially: milliseconds even for MovieLens
    25M's rows, where a ``prange`` loop would add about a second to the kernel's compile."""
    NU = np.empty(P.shape[0], np.float64)
    NI = np.empty(Q.shape[0], np.float64)
    for u in range(P.shape[0]):
        row_sqnorms(P, NU, u)
    for i in range(Q.shape[0]):
        row_sqnorms(Q, NI, i)
    return NU, NI


@width_kernel(SGD_UNROLLED, **JIT)
def sgd_block(lo, hi, users, items, values, mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b, learn_bias):
    """Per-rating SGD (batch size 1) over ratings lo..hi of one block.

    From ``CARRY_NORMS_FROM`` chunks on, ``NU[u]`` and ``NI[i]`` (float64) hold ‖p_u‖² and
    ‖q_i‖² (a negative value: not known yet, summed from the row at its first rating) and are
    carried from step to step: a step's new norms follow from the old ones, p_u·q_i and the
    step's two coefficients (three scalar fused multiply-adds, where summing the norms afresh
    took two vector ones a factor). Shorter rows sum the norms with the dot product and leave
    ``NU`` and ``NI`` as they are. The norms enter only the regularization loss, never the
    parameters.

    Updates bu, bi (when ``learn_bias``), P, Q, NU and NI in place; returns the sums of the base
    and the regularization loss, each rating's taken at the parameters before its step. The
    common factor counts (``SGD_UNROLLED``: 2, 4, 8 or 16 chunks of W) run a body compiled for
    their width, with every loop over the row unrolled; the arithmetic, and so every bit of the
    result, is the same as the general body's. Each width is a variant of its own (``CHUNKS``).
    """
    if CHUNKS:  # a constant of the variant: Numba prunes the branch not taken
        return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, NU, NI, lr, lam,
                           lam_b, learn_bias, CHUNKS, False)  # fmt: skip
    n_chunks = P.shape[1] // lanes_of(P)
    has_rest = P.shape[1] % lanes_of(P) != 0
    return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b,
                       learn_bias, n_chunks, has_rest)  # fmt: skip


@width_kernel(SGD_UNROLLED, parallel=True, **JIT)
def sgd_epoch(
    users, items, values, point_bounds, block_points, shift_order, assign_offsets, assign_blocks,
    mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, point_losses,
):  # fmt: skip
    """One epoch of per-rating SGD: for each shift in ``shift_order``, its blocks in parallel.

    Block b owns the loss points ``block_points[b]:block_points[b + 1]``; point p is the run of
    ratings ``point_bounds[p]:point_bounds[p + 1]`` (with one point per block, the block itself).
    Updates bu, bi, P, Q in place (rows are owned by one block at a time: no races) and writes
    each point's base and regularization loss sums into ``point_losses[p]``. The rows' squared
    norms that ``sgd_block`` carries (rows of ``CARRY_NORMS_FROM`` chunks or more) are summed
    at each row's first rating in the epoch, each row on its own, so the losses too are the same
    however many threads run and however blocks are cut into points; a row the epoch does not
    touch costs nothing (summing every row at the start, serially, took 11 ms of a 0.17 s epoch
    on the ML-25M twin).
    """
    NU = np.full(P.shape[0], -1.0)  # not known yet
    NI = np.full(Q.shape[0], -1.0)
    n_workers = assign_offsets.shape[1] - 1
    for s in range(shift_order.shape[0]):
        t = shift_order[s]
        for w in prange(n_workers):
            for j in range(assign_offsets[t, w], assign_offsets[t, w + 1]):
                b = assign_blocks[t, j]
                for p in range(block_points[b], block_points[b + 1]):
                    base, regl = sgd_block(
                        point_bounds[p], point_bounds[p + 1], users, items, values,
                        mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b, learn_bias,
                    )  # fmt: skip
                    point_losses[p, 0] = base
                    point_losses[p, 1] = regl


@sized_kernel(**JIT)
def predict(users, items, mu, bu, bi, P, Q, out):
    """r̂ for each (user, item) pair of model rows into ``out``; a row of -1 (unknown) contributes
    neither bias nor factors. Each thread writes its own slice of ``out``."""
    for j in prange(users.shape[0]):
        u = users[j]
        i = items[j]
        r = mu
        if u >= 0:
            r += bu[u]
        if i >= 0:
            r += bi[i]
        if u >= 0 and i >= 0:
            r += dot(P, u, Q, i)
        out[j] = r


@width_kernel(SGD_UNROLLED, **JIT)
def sgd_block_points(
    users, items, values, point_bounds, mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b, learn_bias,
    point_losses,
):  # fmt: skip
    """``sgd_block`` over each point of one block held apart: point p is ratings
    ``point_bounds[p]:point_bounds[p + 1]`` of ``users``/``items``/``values`` (the block's own
    arrays, rows relative to the slices ``bu``, ``bi``, ``P``, ``Q`` of its two strata), its
    loss sums into ``point_losses[p]``. The same steps in the same order as ``sgd_epoch`` on
    that block, so the same parameters, bit for bit, on whichever process trains it. ``NU`` and
    ``NI`` are the two strata's squared row norms, carried from block to block as ``sgd_epoch``
    carries them over the epoch (negative: not known yet, summed at the row's first rating; the
    caller sets them so at the epoch's start), so the losses too are the in-process fit's, bit
    for bit."""
    for p in range(point_bounds.shape[0] - 1):
        base, regl = sgd_block(
            point_bounds[p], point_bounds[p + 1], users, items, values,
            mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b, learn_bias,
        )  # fmt: skip
        point_losses[p, 0] = base
        point_losses[p, 1] = regl
