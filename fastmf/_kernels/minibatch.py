"""Mini-batch training kernels: a batch's gradient of L_batch gathered in slots, then one
optimizer step for every row the batch touched.

Legend as in ``training``, and ``batch_size`` the nominal batch size B. For a batch of ratings
the objective is

    L_batch = ( Σ_batch (r − r̂)²  +  Σ_batch λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²) ) / B

and a step is θ ← θ − η ∇θ L_batch for plain SGD. The divisor is B even for a batch that a
block's end cuts short: every rating then weighs 1/B in every step, so an epoch moves, to first
order in η, by η·N/B down the gradient of the mean objective over all N ratings, whatever the
block layout. Every kernel sees arrays and scalars only; the race policy is ``training``'s.

The constants these kernels compile in are defined here, not imported: Numba's cache checks a
kernel's own file only, so a constant read from another module would not be seen to change
(tests check that the ones shared with ``training`` and ``sorting`` agree).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastmf._kernels.jit import JIT, JIT_INLINE, width_kernel
from fastmf._kernels.simd import (
    cast_like,
    fma,
    prefetch_row,
    simd_grad_sumsq,
    simd_segment_dots,
    simd_segment_gradient,
    simd_step_and_clear,
)
from fastmf._kernels.simd_batch import (
    simd_wide_rating_pass,
    simd_wide_segment_dots,
    simd_wide_segment_gradient,
    simd_wide_sqnorm,
    simd_wide_step_and_clear,
)
from fastmf._kernels.training import lanes_of

SGD, ADAGRAD, ADAM, ROW_ADAGRAD, DAMPED_SGD = 0, 1, 2, 3, 4
OPTIMIZER_CODES = {
    "sgd": SGD,
    "adagrad": ADAGRAD,
    "adam": ADAM,
    "row_adagrad": ROW_ADAGRAD,
    "damped_sgd": DAMPED_SGD,
}
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
EPS = 1e-8

# ratings ahead whose rows are prefetched: 16 as in the per-rating body (4, 8, 24, 32 and 64 were
# measured on this kernel too, none faster)
PREFETCH_AHEAD = 16
STEP_AHEAD = 4  # touched rows ahead whose factors the batch's step prefetches (of 2, 4, 8)
# the runs a block's ratings are interleaved in (``_kernels.sorting.STREAMS``, which lays them
# out)
STREAMS = 3
# ``training.WIDE_FROM``: from this many chunks the rows are summed and stepped in 2W-lane
# vectors (``simd_wide_*``), and each run of a batch is one loop (``batch_run_wide``)
WIDE_FROM = 8
# the chunk counts whose batch bodies are compiled for their width (``training.SGD_UNROLLED``'s
# kind: 64 and 128 float32 factors, 32 and 64 float64); ``CHUNKS`` as there
BATCH_UNROLLED = frozenset({8, 16})
CHUNKS = 0


@njit(**JIT_INLINE)
def step_and_clear(X, r, G, s, c, a, n_chunks):
    """x_r ← c·x_r + a·g_s and g_s ← 0 over the row's n_chunks whole chunks: in 2W-lane vectors
    from ``WIDE_FROM`` chunks on (the same bits, element by element, as in W lanes)."""
    if n_chunks >= WIDE_FROM:
        simd_wide_step_and_clear(X, r, G, s, c, a, n_chunks)
    else:
        simd_step_and_clear(X, r, G, s, c, a, n_chunks)


@njit(**JIT_INLINE)
def step_row(X, S, r, G, s, m, opt, lr, scale, corr1, corr2, n_chunks, has_rest):
    """Row r of X takes one optimizer step along its batch gradient ``(G[s] + m·X[r]) * scale``
    (m·X[r] is the λ part, from the row's rating count), and G[s] is zeroed. ``S[:, r]`` holds
    the row's optimizer state (AdaGrad's sums of squares; Adam's two moments; see
    ``train.kernel_state``). The row is n_chunks SIMD chunks, plus the columns left over when
    ``has_rest``."""
    k = X.shape[1]
    if opt == SGD or opt == ROW_ADAGRAD or opt == DAMPED_SGD:
        rate = lr
        if opt == ROW_ADAGRAD:
            # one sum of squares per row (the mean square of its gradients), as LIBMF keeps it
            sq = simd_grad_sumsq(G, s, X, r, m, n_chunks)
            if has_rest:
                for f in range(n_chunks * lanes_of(X), k):
                    g = fma(m, X[r, f], G[s, f])
                    sq = fma(g, g, sq)
            acc = S[0, r, 0] + sq * (scale * scale) / k
            S[0, r, 0] = acc
            rate = lr / (np.sqrt(acc) + cast_like(EPS, lr))
        a = -(rate * scale)
        c = 1 + a * m
        step_and_clear(X, r, G, s, c, a, n_chunks)
        if has_rest:
            for f in range(n_chunks * lanes_of(X), k):
                X[r, f] = c * X[r, f] + a * G[s, f]
                G[s, f] = 0
    else:
        step_row_elementwise(X, S, r, G, s, m, opt, lr, scale, corr1, corr2)


@njit(**JIT)
def step_row_elementwise(X, S, r, G, s, m, opt, lr, scale, corr1, corr2):
    """``step_row`` for the optimizers with state per element (AdaGrad, Adam). Compiled once and
    called, not inlined: each unrolled body of the batch kernel would otherwise carry its own
    copy, and compiling them took seconds. Every product that meets a sum is an explicit
    ``fma``, as in ``step_touched_rows_sgd``: LLVM may fuse a product into a sum across this
    call when it compiles both at once, and not when one comes from Numba's cache."""
    k = X.shape[1]
    eps = cast_like(EPS, lr)
    if opt == ADAGRAD:
        for f in range(k):
            g = fma(m, X[r, f], G[s, f]) * scale
            G[s, f] = 0
            acc = fma(g, g, S[0, r, f])
            S[0, r, f] = acc
            X[r, f] = X[r, f] - lr * g / (np.sqrt(acc) + eps)
    else:
        b1 = cast_like(ADAM_BETA1, lr)
        b2 = cast_like(ADAM_BETA2, lr)
        c1 = cast_like(1 - ADAM_BETA1, lr)
        c2 = cast_like(1 - ADAM_BETA2, lr)
        for f in range(k):
            g = fma(m, X[r, f], G[s, f]) * scale
            G[s, f] = 0
            mom = fma(b1, S[0, r, f], c1 * g)
            v = fma(b2, S[1, r, f], (c2 * g) * g)
            S[0, r, f] = mom
            S[1, r, f] = v
            X[r, f] = X[r, f] - lr * (mom / corr1) / (np.sqrt(v / corr2) + eps)


@njit(**JIT_INLINE)
def step_scalar(x, S, r, g, opt, lr, corr1, corr2):
    """The new value of one bias x = b[r] after an optimizer step along g (its state, in the
    last column of ``S[:, r]``, updated), with explicit ``fma`` as ``step_row_elementwise``."""
    if opt == SGD:
        return x - lr * g
    eps = cast_like(EPS, lr)
    c = S.shape[2] - 1
    if opt == ADAGRAD or opt == ROW_ADAGRAD:
        S[0, r, c] = fma(g, g, S[0, r, c])
        return x - lr * g / (np.sqrt(S[0, r, c]) + eps)
    S[0, r, c] = fma(cast_like(ADAM_BETA1, lr), S[0, r, c], cast_like(1 - ADAM_BETA1, lr) * g)
    S[1, r, c] = fma(cast_like(ADAM_BETA2, lr), S[1, r, c], (cast_like(1 - ADAM_BETA2, lr) * g) * g)
    return x - lr * (S[0, r, c] / corr1) / (np.sqrt(S[1, r, c] / corr2) + eps)


@njit(**JIT_INLINE)
def claim_slot(slot_of, CR, r, n):
    """Row r's slot in the batch's gradient rows, counting the rating in ``CR`` (a side's slot
    counts and rows flat: slot s's count at 2s, its model row at 2s + 1): a new slot, n, the
    first time the batch meets r. Returns the slot and the slots in use. Branch-free (whether
    a row is new is a coin toss): slot n's row is always written, n grows only for a new one."""
    old = slot_of[r]
    new = old < 0
    s = np.uint32(old + (n - old) * new)  # unsigned, as are r and n: no negative-index tests
    slot_of[r] = s
    two = np.uint64(2)
    CR[np.uint64(n) * two + np.uint64(1)] = r
    CR[np.uint64(s) * two] += 1
    return s, n + new


@njit(**JIT_INLINE)
def bias_corrections(steps, r, opt, like):
    """Adam's 1 − β^t for row r after counting its step (1 for other optimizers)."""
    if opt != ADAM:
        return cast_like(1.0, like), cast_like(1.0, like)
    steps[r] += 1
    t = steps[r]
    return cast_like(1 - ADAM_BETA1**t, like), cast_like(1 - ADAM_BETA2**t, like)


@njit(**JIT_INLINE)
def step_touched_rows_sgd(
    n, CR, slot_of, b, X, NX, carry, G, GH, learn_bias, damped, lr, scale, lam2, lam_b2, n_chunks,
    has_rest,
):  # fmt: skip
    """``step_touched_rows`` for plain and damped SGD, which keep no optimizer state. A loop of
    its own, with no reference to the state arrays, runs the step of a batch of 1024 about half
    as fast again (measured on one block of the 5M twin: 28 against 55 ns a rating). Every
    product that meets a sum is an explicit ``fma``, so the rounding is the same in every body
    this loop is inlined into."""
    one = cast_like(1.0, lr)
    ls = lr * scale
    k_b = one + one + lam_b2  # a bias's curvature a rating, 2 + 2λ_b
    last = np.uint64(max(n, 1) - 1)
    for s in range(np.uint64(n)):  # unsigned indices: no negative-index tests
        # the model row STEP_AHEAD slots on: its factors are in L2, not L1, by now
        prefetch_row(X, np.uint32(CR[min(s + np.uint64(STEP_AHEAD), last), 1]), n_chunks)
        r = np.uint32(CR[s, 1])
        slot_of[r] = -1
        c = cast_like(CR[s, 0], lr)
        CR[s, 0] = 0
        m = c * lam2
        rate = lr
        h = GH[s, 1]
        if damped:
            rate = lr / fma(ls, fma(c, lam2, h + h), one)
        GH[s, 1] = 0
        if learn_bias:
            rate_b = lr
            if damped:
                rate_b = lr / fma(ls * c, k_b, one)
            g = fma(c * lam_b2, b[r], GH[s, 0]) * scale
            b[r] = fma(-rate_b, g, b[r])
        GH[s, 0] = 0
        a = -(rate * scale)
        shrink = fma(a, m, one)
        step_and_clear(X, r, G, s, shrink, a, n_chunks)
        if has_rest:
            for f in range(n_chunks * lanes_of(X), X.shape[1]):
                X[r, f] = fma(a, G[s, f], shrink * X[r, f])
                G[s, f] = 0
        if carry:
            NX[r] = simd_wide_sqnorm(X, r, n_chunks)


@njit(**JIT_INLINE)
def step_touched_rows(
    n, CR, slot_of, steps, b, X, NX, carry, S, G, GH, learn_bias, opt, lr, scale, lam2, lam_b2,
    n_chunks, has_rest,
):  # fmt: skip
    """The batch's step for the n rows it touched (one side: users or items). The row in slot s,
    with c = ``CR[s, 0]`` ratings in the batch, has the gradient Σ −2e·(other row) gathered in
    ``G[s]`` (``GH[s, 0]`` for its bias) plus c times its own penalty's, 2λ·x_r (2λ_b·b_r): its
    bias and factors step along that, and its slot goes back to zero and free. ``GH[s, 1]``
    holds Σ ‖other row‖² over the row's ratings: with ``DAMPED_SGD`` the row's curvature in
    L_batch is at most h = (2·GH[s, 1] + c·2λ)/B (h_b = c·(2 + 2λ_b)/B for its bias), and its
    rate is η/(1 + η·h). ``S`` and ``steps`` are the side's optimizer state. With ``carry``,
    ``NX[r]`` takes the stepped row's ‖x_r‖² (``simd_wide_sqnorm``); without, NX is not read."""
    if opt == SGD or opt == DAMPED_SGD:
        damped = opt == DAMPED_SGD
        step_touched_rows_sgd(n, CR, slot_of, b, X, NX, carry, G, GH, learn_bias, damped, lr,
                              scale, lam2, lam_b2, n_chunks, has_rest)  # fmt: skip
        return
    for s in range(n):
        r = CR[s, 1]
        slot_of[r] = -1
        c = cast_like(CR[s, 0], lr)
        CR[s, 0] = 0
        corr1, corr2 = bias_corrections(steps, r, opt, lr)
        GH[s, 1] = 0
        if learn_bias:
            g = fma(c * lam_b2, b[r], GH[s, 0]) * scale
            b[r] = step_scalar(b[r], S, r, g, opt, lr, corr1, corr2)
        GH[s, 0] = 0
        m = c * lam2
        step_row(X, S, r, G, s, m, opt, lr, scale, corr1, corr2, n_chunks, has_rest)
        if carry:
            NX[r] = simd_wide_sqnorm(X, r, n_chunks)


@njit(**JIT_INLINE)
def prefetch_ahead(P, Q, users, items, pos, end, after, last, n_chunks, distance):
    """Prefetch the rows of the rating ``distance`` places (``PREFETCH_AHEAD`` in the kernel)
    after ``pos`` in the order a batch is summed in (its interleaved run, which ends at
    ``end``, then the ratings from ``after``; never past ``last``), branch-free: a user's row is
    in the cache already when its user is this one's."""
    ahead = pos + np.uint64(STREAMS * distance)
    ahead = min(ahead if ahead < end else after + (ahead - end), last)
    prefetch_row(P, users[ahead], n_chunks)
    prefetch_row(Q, items[ahead], n_chunks)


@njit(**JIT_INLINE)
def batch_run_wide(
    j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, NU, lam, lam_b, scratch,
    flat, n_u, n_i, base, regl, n_chunks,
):  # fmt: skip
    """The interleaved run at j's share of its batch's gradient (positions j, j + STREAMS, ...
    below ``stop``, as ``batch_segment`` takes them), rows of whole chunks from ``WIDE_FROM``
    on: one loop whose only branch is its end (a loop a segment missed a branch at each end),
    each rating's rows loaded once. ``NU``: ‖p_u‖², negative where not known; ``flat``: the
    slots' counts and rows, bias gradients and partner norms (slot s's at 2s, 2s + 1). The
    segments' sums in their order, so their bits; returns the losses and the slots in use."""
    GU, _, _, slot_u, GI, _, _, slot_i = scratch
    CRU, CRI, GHU1, GHI1 = flat
    step = np.uint64(STREAMS)
    two = np.uint64(2)
    end = np.uint64(run_end)
    after = np.uint64(then)
    last = np.uint64(hi - 1)
    limit = np.uint64(stop)
    pos = np.uint64(j)
    while pos < limit:
        prefetch_ahead(P, Q, users, items, pos, end, after, last, n_chunks, PREFETCH_AHEAD)
        u = np.uint32(users[pos])
        i = np.uint32(items[pos])
        su, n_u = claim_slot(slot_u, CRU, u, n_u)
        si, n_i = claim_slot(slot_i, CRI, i, n_i)
        b_u = bu[u]
        b_i = bi[i]
        r0 = values[pos] - mu - b_u - b_i
        sp = NU[u]
        if sp < 0:  # not known yet: the row's first rating in the epoch
            sp = simd_wide_sqnorm(P, u, n_chunks)
        NU[u] = sp  # stored at every rating: an array write in the branch costs reference counts
        e, sq = simd_wide_rating_pass(GU, su, GI, si, P, u, Q, i, r0, n_chunks)
        base += e * e
        regl += lam * (sp + sq) + lam_b * (b_u * b_u + b_i * b_i)
        a_u = np.uint64(su) * two
        a_i = np.uint64(si) * two
        # the squared norms of each row's partners, for DAMPED_SGD's rate
        GHU1[a_u + np.uint64(1)] += sq
        GHI1[a_i + np.uint64(1)] += sp
        e2 = e + e
        GHU1[a_u] -= e2
        GHI1[a_i] -= e2
        pos += step
    return base, regl, n_u, n_i


@njit(**JIT_INLINE)
def batch_segment(
    j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, lam, lam_b, scratch,
    flat, seg, n_u, n_i, base, regl, n_chunks, has_rest,
):  # fmt: skip
    """A segment's share of its batch's gradient, for rows ``batch_run_wide`` does not take:
    the n ratings of user ``users[j]`` at j, j + STREAMS, ... below ``stop`` (in one of the
    block's interleaved runs, which ends at ``run_end``; the ratings after it start at
    ``then``). The dots load p_u once; the user's gradient is summed in registers and added to
    its slot once; each item's slot gets −2e·p_u. ``flat`` is ``batch_run_wide``'s; ``seg`` is
    four arrays of at least n: each rating's dot product, ‖q_i‖², −2e and item slot. Returns
    the losses plus the segment's, the slots in use and the position after it in its run."""
    GU, GHU, _, slot_u, GI, GHI, _, slot_i = scratch
    CRU, CRI, _, _ = flat
    D, N, C, S = seg
    k = P.shape[1]
    W = lanes_of(P)
    u = np.uint32(users[j])
    if n_chunks >= WIDE_FROM:  # a constant in the unrolled bodies, as in ``training.sgd_ratings``
        sp, n = simd_wide_segment_dots(P, u, Q, users, items, j, STREAMS, stop, D, N, n_chunks)
    else:
        sp, n = simd_segment_dots(P, u, Q, users, items, j, STREAMS, stop, D, N, n_chunks)
    su, n_u = claim_slot(slot_u, CRU, u, n_u)
    CRU[np.uint64(su) * np.uint64(2)] += n - 1
    # the positions and rows unsigned (all checked before any kernel runs), as in
    # ``training.sgd_ratings``: Numba then emits no test for a negative index
    j0 = np.uint64(j)
    step = np.uint64(STREAMS)
    n_seg = np.uint64(n)
    if has_rest:
        for f in range(n_chunks * W, k):
            sp += P[u, f] * P[u, f]
        for m in range(n_seg):
            i = np.uint32(items[j0 + step * m])
            for f in range(n_chunks * W, k):
                D[m] += P[u, f] * Q[i, f]
                N[m] += Q[i, f] * Q[i, f]
    b_u = bu[u]
    norms_u = GHU[su, 1]
    bias_u = GHU[su, 0]
    end = np.uint64(run_end)
    after = np.uint64(then)
    last = np.uint64(hi - 1)
    for m in range(n_seg):
        pos = j0 + step * m
        prefetch_ahead(P, Q, users, items, pos, end, after, last, n_chunks, PREFETCH_AHEAD)
        i = np.uint32(items[pos])
        si, n_i = claim_slot(slot_i, CRI, i, n_i)
        b_i = bi[i]
        r0 = values[pos] - mu - b_u - b_i
        sq = N[m]
        e = r0 - D[m]
        base += e * e
        regl += lam * (sp + sq) + lam_b * (b_u * b_u + b_i * b_i)
        # the squared norms of each row's partners, for DAMPED_SGD's rate
        norms_u += sq
        GHI[si, 1] += sp
        e2 = e + e
        C[m] = -e2
        S[m] = si
        bias_u -= e2
        GHI[si, 0] -= e2
    GHU[su, 1] = norms_u
    GHU[su, 0] = bias_u
    if n_chunks >= WIDE_FROM:
        simd_wide_segment_gradient(GU, su, GI, S, P, u, Q, items, j, STREAMS, n, C, n_chunks)
    else:
        simd_segment_gradient(GU, su, GI, S, P, u, Q, items, j, STREAMS, n, C, n_chunks)
    if has_rest:
        for m in range(n_seg):
            i = np.uint32(items[j0 + step * m])
            si = S[m]
            for f in range(n_chunks * W, k):
                GU[su, f] += C[m] * Q[i, f]
                GI[si, f] += C[m] * P[u, f]
    return base, regl, n_u, n_i, j + STREAMS * n


@njit(**JIT_INLINE)
def batch_ratings(
    lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, NU, lr, lam, lam_b, learn_bias,
    opt, state, scratch, n_chunks, has_rest,
):  # fmt: skip
    """The body of ``batch_block``, with its optimizer state and scratch arrays in two tuples:
    the row is n_chunks SIMD chunks, plus the columns left over when ``has_rest``. A batch's
    gradient is summed one interleaved run at a time (positions start + t, start + t + STREAMS,
    ... for t < STREAMS), each run in one loop (``batch_run_wide``, with ``NU``) or, for rows
    it does not take, a user's segment at a time (``batch_segment``)."""
    SU, u_steps, SI, i_steps = state
    GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i = scratch
    # the slots' scalars as flat views, made once a block (a view is a call and reference counts)
    flat = (CRU.reshape(CRU.size), CRI.reshape(CRI.size), GHU.reshape(GHU.size),
            GHI.reshape(GHI.size))  # fmt: skip
    base = 0.0
    regl = 0.0
    lam2 = lam + lam
    lam_b2 = lam_b + lam_b
    # the nominal batch size, also for a batch cut short by the end of the block
    scale = cast_like(1.0 / batch_size, lr)
    one_loop = n_chunks >= WIDE_FROM and not has_rest  # a constant in the unrolled bodies
    cap = 1 if one_loop else min(batch_size, max(hi - lo, 1)) // STREAMS + 1  # for batch_segment
    seg = (np.empty(cap, P.dtype), np.empty(cap, P.dtype), np.empty(cap, P.dtype),
           np.empty(cap, np.intp))  # fmt: skip
    start = lo
    while start < hi:
        stop = min(start + batch_size, hi)
        n_u = 0
        n_i = 0
        for t in range(STREAMS):
            j = start + t
            run_end = j + STREAMS * ((stop - j + STREAMS - 1) // STREAMS)
            then = stop if t == STREAMS - 1 else j + 1
            if one_loop:
                base, regl, n_u, n_i = batch_run_wide(
                    j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, NU, lam,
                    lam_b, scratch, flat, n_u, n_i, base, regl, n_chunks,
                )  # fmt: skip
                continue
            while j < stop:
                base, regl, n_u, n_i, j = batch_segment(
                    j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, lam,
                    lam_b, scratch, flat, seg, n_u, n_i, base, regl, n_chunks, has_rest,
                )  # fmt: skip
        step_touched_rows(n_u, CRU, slot_u, u_steps, bu, P, NU, one_loop, SU, GU, GHU, learn_bias,
                          opt, lr, scale, lam2, lam_b2, n_chunks, has_rest)  # fmt: skip
        step_touched_rows(n_i, CRI, slot_i, i_steps, bi, Q, NU, False, SI, GI, GHI, learn_bias,
                          opt, lr, scale, lam2, lam_b2, n_chunks, has_rest)  # fmt: skip
        start = stop
    return base, regl


@width_kernel(BATCH_UNROLLED, **JIT)
def batch_block(
    lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, NU, lr, lam, lam_b, learn_bias,
    opt, SU, u_steps, SI, i_steps, GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i,
):  # fmt: skip
    """Mini-batches of ``batch_size`` consecutive ratings over ratings lo..hi of one block.

    Each batch's gradient of L_batch (divided by ``batch_size``, also for the short batch at
    the end) is taken at the parameters at the batch's start, then every row
    the batch touches takes one optimizer step (rows it does not touch keep their state). Updates
    bu, bi, P, Q and the optimizer state (``SU``, ``u_steps``, ``SI``, ``i_steps``: see
    ``train.kernel_state``) in place; returns the sums of the base and regularization loss over
    the ratings. ``NU`` holds each user row's ‖p_u‖² as the kernel sums it (and updates it at
    each step), negative where not known yet: started negative, valid while only this kernel
    changes P (``batch_epoch`` starts it so). The calling thread's scratch holds, per side, a
    batch's gradient slots GU, GI and in ``GHU``/``GHI`` each slot's bias gradient and its
    partners' squared norms (all zero between batches), in ``CRU``/``CRI`` each slot's rating
    count and model row; ``slot_u``/``slot_i`` give each model row's slot (-1 when free). As in
    ``training.sgd_block``, 8 and 16 chunks of W (64 and 128 float32 factors, 32 and 64
    float64: ``BATCH_UNROLLED``) run a body compiled for that width; the other widths share the
    general body. Each width is a variant of its own (``CHUNKS``): a fit compiles one.
    """
    state = (SU, u_steps, SI, i_steps)
    scratch = (GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i)
    if CHUNKS:  # a constant of the variant, as in training.sgd_block
        return batch_ratings(
            lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, NU, lr, lam, lam_b,
            learn_bias, opt, state, scratch, CHUNKS, False,
        )  # fmt: skip
    n_chunks = P.shape[1] // lanes_of(P)
    has_rest = P.shape[1] % lanes_of(P) != 0
    return batch_ratings(
        lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, NU, lr, lam, lam_b,
        learn_bias, opt, state, scratch, n_chunks, has_rest,
    )  # fmt: skip


@width_kernel(BATCH_UNROLLED, parallel=True, **JIT)
def batch_epoch(
    users, items, values, point_bounds, block_points, shift_order, assign_offsets, assign_blocks,
    batch_size, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt, SU, u_steps, SI, i_steps,
    GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i, point_losses,
):  # fmt: skip
    """One epoch of mini-batch training with optimizer ``opt``; the parallel twin of
    ``training.sgd_epoch`` for any batch size and optimizer. Every point starts a batch (its
    bounds are whole batches from its block's start), so the batches are the same however the
    block is cut into points. The gradient slots (``GU``, ``GHU``, ``CRU`` and the items'
    likewise) have one slice per worker; the slot of each model row is shared (a block owns its
    rows), as are the user rows' squared norms (``batch_block``'s ``NU``, not known at the
    epoch's start). Updates parameters and optimizer state in place (no races, as in
    ``training.sgd_epoch``)."""
    n_workers = assign_offsets.shape[1] - 1
    NU = np.full(P.shape[0], cast_like(-1.0, mu))  # ‖p_u‖², not known yet
    for s in range(shift_order.shape[0]):
        t = shift_order[s]
        for w in prange(n_workers):
            for j in range(assign_offsets[t, w], assign_offsets[t, w + 1]):
                b = assign_blocks[t, j]
                for p in range(block_points[b], block_points[b + 1]):
                    base, regl = batch_block(
                        point_bounds[p], point_bounds[p + 1], batch_size, users, items, values,
                        mu, bu, bi, P, Q, NU, lr, lam, lam_b, learn_bias, opt, SU, u_steps, SI,
                        i_steps, GU[w], GHU[w], CRU[w], slot_u, GI[w], GHI[w], CRI[w], slot_i,
                    )  # fmt: skip
                    point_losses[p, 0] = base
                    point_losses[p, 1] = regl


@width_kernel(BATCH_UNROLLED, **JIT)
def batch_block_points(
    users, items, values, point_bounds, batch_size, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias,
    opt, SU, u_steps, SI, i_steps, GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i, point_losses,
):  # fmt: skip
    """``batch_block`` over each point of one block held apart, as
    ``training.sgd_block_points``: the grouped optimizer state (``train.kernel_state``) and the
    slot maps are the slices of the block's two strata, the scratch is one worker's
    (``batch_epoch``'s ``GU[w]``, ...); the user rows' squared norms start unknown at each call
    (``batch_block``'s ``NU``)."""
    NU = np.full(P.shape[0], cast_like(-1.0, mu))  # ‖p_u‖², not known yet
    for p in range(point_bounds.shape[0] - 1):
        base, regl = batch_block(
            point_bounds[p], point_bounds[p + 1], batch_size, users, items, values,
            mu, bu, bi, P, Q, NU, lr, lam, lam_b, learn_bias, opt,
            SU, u_steps, SI, i_steps, GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i,
        )  # fmt: skip
        point_losses[p, 0] = base
        point_losses[p, 1] = regl
