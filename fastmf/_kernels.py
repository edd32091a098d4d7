"""Training and prediction kernels of the biased matrix-factorization model.

Legend: ``mu`` global mean, ``bu``/``bi`` user/item biases, ``P``/``Q`` user/item factors (one row
per user or item), ``lr`` learning rate η, ``lam`` the factor penalty λ (``reg``), ``lam_b`` the
bias penalty (``reg_bias``). For a batch B the objective is

    L_B = ( Σ_B (r − r̂)²  +  Σ_B λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²) ) / |B|

and a step is θ ← θ − η ∇θ L_B for plain SGD. Every kernel sees arrays and scalars only.

Race policy: the epoch kernels run the blocks of one sub-epoch in parallel. Those blocks share no
user and no item (see ``_schedule``), so every row of ``bu``, ``bi``, ``P``, ``Q`` and of the
optimizer state is written by one thread at a time, and each block writes its own slot of
``block_losses``. Within a block the order of ratings is fixed, and every sum is taken in the order
the source gives (eight explicit lanes, no reassociation), so the result is bit for bit the same
with any number of threads and in every compile.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf._jit import JIT, JIT_INLINE

SGD, ADAGRAD, ADAM = 0, 1, 2
OPTIMIZER_CODES = {"sgd": SGD, "adagrad": ADAGRAD, "adam": ADAM}
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
EPS = 1e-8


def _lanes(dtype):
    """Vector width: 16 float32 or 8 float64 lanes (512 bits, or two 256-bit halves)."""
    return 16 if dtype == types.float32 else 8


def _fma(builder, vty):
    suffix = "f32" if vty.element == ir.FloatType() else "f64"
    name = f"llvm.fma.v{vty.count}{suffix}"
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)


def _row_ptr(context, builder, aryty, ary, row, col, vty):
    """Pointer to the W lanes of ``ary[row, col:col + W]``."""
    ptr = cgutils.get_item_pointer2(
        context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
        strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout,
        inds=[row, col], wraparound=False,
    )  # fmt: skip
    return builder.bitcast(ptr, vty.as_pointer())


def _as_intp(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


def _hsum_pair(builder, a, b, n):
    """(Σ lanes of a, Σ lanes of b) for two n-lane vectors, reduced together in a fixed tree: each
    level adds the upper half of every group to its lower half."""
    # first level: the lower halves of a and b side by side, plus their upper halves
    h = n // 2
    idx = ir.VectorType(ir.IntType(32), n)
    lo = builder.shuffle_vector(a, b, ir.Constant(idx, list(range(h)) + list(range(n, n + h))))
    hi = builder.shuffle_vector(a, b, ir.Constant(idx, list(range(h, n)) + list(range(n + h, 2 * n))))
    v = builder.fadd(lo, hi)  # lanes 0..h-1 hold a's partial sums, h..n-1 b's
    width = n
    while h > 1:
        q = h // 2
        idx = ir.VectorType(ir.IntType(32), 2 * q)
        lo = builder.shuffle_vector(v, v, ir.Constant(idx, list(range(q)) + list(range(h, h + q))))
        hi = builder.shuffle_vector(v, v, ir.Constant(idx, list(range(q, h)) + list(range(h + q, width))))
        v = builder.fadd(lo, hi)
        width = 2 * q
        h = q
    zero = ir.Constant(ir.IntType(32), 0)
    one = ir.Constant(ir.IntType(32), 1)
    return builder.extract_element(v, zero), builder.extract_element(v, one)


@intrinsic
def simd_dot_sqnorm(typingctx, P, u, Q, i, n_chunks):
    """(p_u·q_i, ‖p_u‖² + ‖q_i‖²) over the first n_chunks·W columns, summed in W lanes and a
    fixed tree, so the order of every addition is set here and not by the compiler."""
    sig = types.UniTuple(P.dtype, 2)(P, u, Q, i, n_chunks)

    def codegen(context, builder, signature, args):
        P_ty, u_ty, Q_ty, i_ty, n_ty = signature.args
        W = _lanes(P_ty.dtype)
        vty = ir.VectorType(context.get_value_type(P_ty.dtype), W)
        parr = context.make_array(P_ty)(context, builder, args[0])
        qarr = context.make_array(Q_ty)(context, builder, args[2])
        row_u = _as_intp(context, builder, args[1], u_ty)
        row_i = _as_intp(context, builder, args[3], i_ty)
        count = _as_intp(context, builder, args[4], n_ty)
        zero = ir.Constant(vty, [0.0] * W)
        # two sets of accumulators (even and odd chunks) and separate ones for ‖p‖² and ‖q‖²:
        # six short dependency chains instead of one long one
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(3)] for _ in range(2)]
        fma = _fma(builder, vty)

        def chunk(index, accs):
            col = builder.mul(index, ir.Constant(index.type, W))
            p = builder.load(_row_ptr(context, builder, P_ty, parr, row_u, col, vty), align=4)
            q = builder.load(_row_ptr(context, builder, Q_ty, qarr, row_i, col, vty), align=4)
            for a, (x, y) in zip(accs, ((p, q), (p, p), (q, q))):
                builder.store(builder.call(fma, [x, y, builder.load(a)]), a)

        two = ir.Constant(count.type, 2)
        with cgutils.for_range(builder, builder.sdiv(count, two)) as loop:
            first = builder.mul(loop.index, two)
            chunk(first, acc[0])
            chunk(builder.add(first, ir.Constant(count.type, 1)), acc[1])
        odd = builder.icmp_signed("!=", builder.srem(count, two), ir.Constant(count.type, 0))
        with builder.if_then(odd):
            chunk(builder.sub(count, ir.Constant(count.type, 1)), acc[0])
        even, odd_ = ([builder.load(a) for a in accs] for accs in acc)
        dots = builder.fadd(even[0], odd_[0])
        sq = builder.fadd(builder.fadd(even[1], odd_[1]), builder.fadd(even[2], odd_[2]))
        d, n = _hsum_pair(builder, dots, sq, W)
        return context.make_tuple(builder, signature.return_type, [d, n])

    return sig, codegen


@intrinsic
def simd_shrink_and_swap(typingctx, P, u, Q, i, c, s, n_chunks):
    """p_u, q_i ← c·p_u + s·q_i, c·q_i + s·p_u (both from the old rows) over the first
    n_chunks·W columns: the SGD step of one rating, with c = 1 − 2ηλ and s = 2η·e."""
    sig = types.void(P, u, Q, i, c, s, n_chunks)

    def codegen(context, builder, signature, args):
        P_ty, u_ty, Q_ty, i_ty, c_ty, s_ty, n_ty = signature.args
        dt = P_ty.dtype
        W = _lanes(dt)
        vty = ir.VectorType(context.get_value_type(dt), W)
        parr = context.make_array(P_ty)(context, builder, args[0])
        qarr = context.make_array(Q_ty)(context, builder, args[2])
        row_u = _as_intp(context, builder, args[1], u_ty)
        row_i = _as_intp(context, builder, args[3], i_ty)
        count = _as_intp(context, builder, args[6], n_ty)
        undef = ir.Constant(vty, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)
        lane0 = ir.Constant(ir.IntType(32), 0)
        cv = context.cast(builder, args[4], c_ty, dt)
        sv = context.cast(builder, args[5], s_ty, dt)
        cvec = builder.shuffle_vector(builder.insert_element(undef, cv, lane0), undef, splat)
        svec = builder.shuffle_vector(builder.insert_element(undef, sv, lane0), undef, splat)
        fma = _fma(builder, vty)
        with cgutils.for_range(builder, count) as loop:
            col = builder.mul(loop.index, ir.Constant(loop.index.type, W))
            pp = _row_ptr(context, builder, P_ty, parr, row_u, col, vty)
            qp = _row_ptr(context, builder, Q_ty, qarr, row_i, col, vty)
            p = builder.load(pp, align=4)
            q = builder.load(qp, align=4)
            builder.store(builder.call(fma, [svec, q, builder.fmul(cvec, p)]), pp, align=4)
            builder.store(builder.call(fma, [svec, p, builder.fmul(cvec, q)]), qp, align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT_INLINE)
def lanes_of(P):
    """W for the dtype of P (the intrinsics' vector width)."""
    return 16 if P.itemsize == 4 else 8


@njit(**JIT_INLINE)
def dot_and_sqnorm(P, u, Q, i):
    """p_u·q_i and ‖p_u‖² + ‖q_i‖²: W lanes over whole chunks, then the rest in order."""
    k = P.shape[1]
    W = lanes_of(P)
    n_chunks = k // W
    d, sq = simd_dot_sqnorm(P, u, Q, i, n_chunks)
    for f in range(n_chunks * W, k):
        d += P[u, f] * Q[i, f]
        sq += P[u, f] * P[u, f] + Q[i, f] * Q[i, f]
    return d, sq


@njit(**JIT_INLINE)
def dot(P, u, Q, i):
    """p_u·q_i summed as in ``dot_and_sqnorm``."""
    return dot_and_sqnorm(P, u, Q, i)[0]


@njit(**JIT)
def sgd_block(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias):
    """Per-rating SGD (batch size 1) over ratings lo..hi of one block.

    Updates bu, bi (when ``learn_bias``), P and Q in place; returns the sums of the base and the
    regularization loss, each rating's taken at the parameters before its step.
    """
    k = P.shape[1]
    W = lanes_of(P)
    n_chunks = k // W
    base = 0.0
    regl = 0.0
    step = lr + lr
    shrink = 1 - step * lam
    for j in range(lo, hi):
        u = users[j]
        i = items[j]
        # the part of the error that does not wait for the dot product
        r0 = values[j] - mu - bu[u] - bi[i]
        d, sq = dot_and_sqnorm(P, u, Q, i)
        e = r0 - d
        base += e * e
        regl += lam * sq + lam_b * (bu[u] * bu[u] + bi[i] * bi[i])
        if learn_bias:
            bu[u] += step * (e - lam_b * bu[u])
            bi[i] += step * (e - lam_b * bi[i])
        se = step * e
        simd_shrink_and_swap(P, u, Q, i, shrink, se, n_chunks)
        for f in range(n_chunks * W, k):
            pf = P[u, f]
            qf = Q[i, f]
            P[u, f] = shrink * pf + se * qf
            Q[i, f] = shrink * qf + se * pf
    return base, regl


@njit(**JIT_INLINE)
def optimizer_step(x, g, s1, s2, opt, lr, corr1, corr2):
    """One element's update by gradient g; returns the new value and optimizer state."""
    if opt == SGD:
        return x - lr * g, s1, s2
    if opt == ADAGRAD:
        s1 = s1 + g * g
        return x - lr * g / (np.sqrt(s1) + EPS), s1, s2
    s1 = ADAM_BETA1 * s1 + (1 - ADAM_BETA1) * g
    s2 = ADAM_BETA2 * s2 + (1 - ADAM_BETA2) * g * g
    return x - lr * (s1 / corr1) / (np.sqrt(s2 / corr2) + EPS), s1, s2


@njit(**JIT)
def batch_block(
    lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
    bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps,
    gU, gUb, rows_u, user_slot, gI, gIb, rows_i, item_slot,
):  # fmt: skip
    """Mini-batches of ``batch_size`` consecutive ratings over ratings lo..hi of one block.

    Each batch's gradient of L_B is taken at the parameters at the batch's start, then every row
    the batch touches takes one optimizer step (rows it does not touch keep their state). Updates
    bu, bi, P, Q and the optimizer state in place, using the scratch arrays gU..item_slot of the
    calling thread; returns the sums of the base and regularization loss over the ratings.
    """
    k = P.shape[1]
    base = 0.0
    regl = 0.0
    lam2 = lam + lam
    lam_b2 = lam_b + lam_b
    start = lo
    while start < hi:
        stop = min(start + batch_size, hi)
        n_u = 0
        n_i = 0
        for j in range(start, stop):
            u = users[j]
            i = items[j]
            su = user_slot[u]
            if su < 0:
                su = n_u
                n_u += 1
                user_slot[u] = su
                rows_u[su] = u
                gUb[su] = 0
                for f in range(k):
                    gU[su, f] = 0
            si = item_slot[i]
            if si < 0:
                si = n_i
                n_i += 1
                item_slot[i] = si
                rows_i[si] = i
                gIb[si] = 0
                for f in range(k):
                    gI[si, f] = 0
            d, sq = dot_and_sqnorm(P, u, Q, i)
            e = (values[j] - mu - bu[u] - bi[i]) - d
            base += e * e
            regl += lam * sq + lam_b * (bu[u] * bu[u] + bi[i] * bi[i])
            e2 = e + e
            gUb[su] += lam_b2 * bu[u] - e2
            gIb[si] += lam_b2 * bi[i] - e2
            for f in range(k):
                gU[su, f] += lam2 * P[u, f] - e2 * Q[i, f]
                gI[si, f] += lam2 * Q[i, f] - e2 * P[u, f]
        scale = 1.0 / (stop - start)
        for s in range(n_u):
            u = rows_u[s]
            user_slot[u] = -1
            corr1 = 1.0
            corr2 = 1.0
            if opt == ADAM:
                u_steps[u] += 1
                corr1 = 1 - ADAM_BETA1 ** u_steps[u]
                corr2 = 1 - ADAM_BETA2 ** u_steps[u]
            if learn_bias:
                bu[u], bu_s1[u], bu_s2[u] = optimizer_step(
                    bu[u], gUb[s] * scale, bu_s1[u], bu_s2[u], opt, lr, corr1, corr2
                )
            for f in range(k):
                P[u, f], P_s1[u, f], P_s2[u, f] = optimizer_step(
                    P[u, f], gU[s, f] * scale, P_s1[u, f], P_s2[u, f], opt, lr, corr1, corr2
                )
        for s in range(n_i):
            i = rows_i[s]
            item_slot[i] = -1
            corr1 = 1.0
            corr2 = 1.0
            if opt == ADAM:
                i_steps[i] += 1
                corr1 = 1 - ADAM_BETA1 ** i_steps[i]
                corr2 = 1 - ADAM_BETA2 ** i_steps[i]
            if learn_bias:
                bi[i], bi_s1[i], bi_s2[i] = optimizer_step(
                    bi[i], gIb[s] * scale, bi_s1[i], bi_s2[i], opt, lr, corr1, corr2
                )
            for f in range(k):
                Q[i, f], Q_s1[i, f], Q_s2[i, f] = optimizer_step(
                    Q[i, f], gI[s, f] * scale, Q_s1[i, f], Q_s2[i, f], opt, lr, corr1, corr2
                )
        start = stop
    return base, regl


@njit(parallel=True, **JIT)
def sgd_epoch(
    users, items, values, block_offsets, shift_order, assign_offsets, assign_blocks,
    mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, block_losses,
):  # fmt: skip
    """One epoch of per-rating SGD: for each shift in ``shift_order``, its blocks in parallel.

    Updates bu, bi, P, Q in place (rows are owned by one block at a time: no races) and writes
    each block's base and regularization loss sums into ``block_losses[block]``.
    """
    n_workers = assign_offsets.shape[1] - 1
    for s in range(shift_order.shape[0]):
        t = shift_order[s]
        for w in prange(n_workers):
            for j in range(assign_offsets[t, w], assign_offsets[t, w + 1]):
                b = assign_blocks[t, j]
                base, regl = sgd_block(
                    block_offsets[b], block_offsets[b + 1], users, items, values,
                    mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias,
                )  # fmt: skip
                block_losses[b, 0] = base
                block_losses[b, 1] = regl


@njit(parallel=True, **JIT)
def batch_epoch(
    users, items, values, block_offsets, shift_order, assign_offsets, assign_blocks, batch_size,
    mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
    bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps,
    gU, gUb, rows_u, user_slot, gI, gIb, rows_i, item_slot, block_losses,
):  # fmt: skip
    """One epoch of mini-batch training with optimizer ``opt``; the parallel twin of
    ``sgd_epoch`` for any batch size and optimizer. Scratch arrays have one slice per worker.
    Updates parameters and optimizer state in place (no races, as in ``sgd_epoch``)."""
    n_workers = assign_offsets.shape[1] - 1
    for s in range(shift_order.shape[0]):
        t = shift_order[s]
        for w in prange(n_workers):
            for j in range(assign_offsets[t, w], assign_offsets[t, w + 1]):
                b = assign_blocks[t, j]
                base, regl = batch_block(
                    block_offsets[b], block_offsets[b + 1], batch_size, users, items, values,
                    mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
                    bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps,
                    gU[w], gUb[w], rows_u[w], user_slot[w], gI[w], gIb[w], rows_i[w], item_slot[w],
                )  # fmt: skip
                block_losses[b, 0] = base
                block_losses[b, 1] = regl


@njit(parallel=True, **JIT)
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
