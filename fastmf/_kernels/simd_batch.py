"""Wide SIMD intrinsics of the mini-batch kernel: its segments' dot products and gradients and
the touched rows' step, a row of n_chunks W-lane chunks taken two chunks at a time in 2W-lane
(512-bit) vectors, the last chunk of an odd count on its own (as ``simd.simd_wide_dot``). Used
from ``minibatch.WIDE_FROM`` chunks on (64 float32 factors, 32 float64), where they do half the
vector instructions of the W-lane ones for the same work. The gradient and the step work element
by element, so they give the W-lane intrinsics' bits; the dot products' sums are taken in 2W
lanes, in an order fixed here (the same in the unrolled and the general body).
``simd_wide_rating_pass`` does one rating's dot product and gradient from the rows it loads once,
with the same sums as the two segment intrinsics that do them apart, and ``simd_wide_sqnorm``
the row norm they sum.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf._kernels.simd import (
    _as_intp,
    _each_wide_chunk,
    _fixed_count,
    _fma,
    _hsum_pair,
    _lanes,
    _row_ptr,
    _segment_dots_loop,
    _segment_operands,
    _segment_rating,
    _splat,
    _wide_row_pair,
    _widened,
)


def _units(builder, count, fixed, W):
    """The (column, wide) units of a constant count: its pairs of chunks, then its odd one."""
    pairs, odd = divmod(fixed, 2)
    units = [(ir.Constant(count.type, 2 * W * k), True) for k in range(pairs)]
    if odd:
        units.append((ir.Constant(count.type, 2 * W * pairs), False))
    return units


def _each_unit(builder, count, W, unit):
    """``unit(col, wide)`` for each unit of a run-time chunk count, in order: its pairs of
    chunks (wide: column 2W·k), then the odd chunk left over (column W·(count − 1))."""
    two = ir.Constant(count.type, 2)
    with cgutils.for_range(builder, builder.sdiv(count, two)) as loop:
        unit(builder.mul(loop.index, ir.Constant(count.type, 2 * W)), True)
    odd = builder.icmp_signed("!=", builder.srem(count, two), ir.Constant(count.type, 0))
    with builder.if_then(odd):
        unit(builder.mul(builder.sub(count, ir.Constant(count.type, 1)),
                         ir.Constant(count.type, W)), False)  # fmt: skip


def _narrowed(builder, bvec, W, wide):
    """A splat of 2W lanes as the unit at hand takes it: whole for a pair of chunks, its first
    W lanes for the odd chunk left over."""
    if wide:
        return bvec
    idx = ir.Constant(ir.VectorType(ir.IntType(32), W), list(range(W)))
    return builder.shuffle_vector(bvec, bvec, idx)


def _wide_sums(builder, wty, count, fixed, n_terms, terms):
    """For each of n_terms terms, Σ x·y over the row, where ``terms(col, wide)`` gives every
    term's (x, y) for the pair of chunks at col (wide) or the odd chunk left over (its lanes
    widened with zeros): pair k goes to accumulator k mod 2, the odd chunk to the first, and the
    two are added at the end, as ``simd_wide_dot`` sums. A constant count (``fixed``) unrolls
    the loop without changing the order of any addition."""
    fma = _fma(builder, wty)
    zero = ir.Constant(wty, [0.0] * wty.count)
    W = wty.count // 2
    if fixed is not None:
        pairs = fixed // 2
        sets = [[zero] * n_terms, [zero] * n_terms]
        for k, (col, wide) in enumerate(_units(builder, count, fixed, W)):
            t = k % 2 if wide else 0
            xy = terms(col, wide)
            if wide and k < 2 and k + 2 < pairs:
                # x·y + 0 rounds as x·y; a plain product only where another fma follows
                sets[t] = [builder.fmul(x, y) for x, y in xy]
            else:
                sets[t] = [
                    builder.call(fma, [x, y, a]) for (x, y), a in zip(xy, sets[t], strict=True)
                ]
        return [builder.fadd(a, b) for a, b in zip(*sets, strict=True)]
    slots = [[cgutils.alloca_once_value(builder, zero) for _ in range(n_terms)] for _ in range(2)]

    def add(col, wide, accs):
        for a, (x, y) in zip(accs, terms(col, wide), strict=True):
            builder.store(builder.call(fma, [x, y, builder.load(a)]), a)

    two = ir.Constant(count.type, 2)
    span = ir.Constant(count.type, 2 * W)
    pairs = builder.sdiv(count, two)
    with cgutils.for_range(builder, builder.sdiv(pairs, two)) as loop:
        first = builder.mul(loop.index, two)
        add(builder.mul(first, span), True, slots[0])
        add(builder.mul(builder.add(first, ir.Constant(count.type, 1)), span), True, slots[1])
    zero_i = ir.Constant(count.type, 0)
    with builder.if_then(builder.icmp_signed("!=", builder.srem(pairs, two), zero_i)):
        add(builder.mul(builder.sub(pairs, ir.Constant(count.type, 1)), span), True, slots[0])
    with builder.if_then(builder.icmp_signed("!=", builder.srem(count, two), zero_i)):
        add(builder.mul(builder.sub(count, ir.Constant(count.type, 1)),
                        ir.Constant(count.type, W)), False, slots[0])  # fmt: skip
    return [builder.fadd(builder.load(a), builder.load(b)) for a, b in zip(*slots, strict=True)]


@intrinsic(prefer_literal=True)
def simd_wide_segment_dots(typingctx, P, u, Q, USERS, ITEMS, j0, step, stop, D, N, n_chunks):
    """``simd.simd_segment_dots`` with its sums in 2W lanes (``_wide_sums``): D[m] = p_u·q_i
    and N[m] = ‖q_i‖² for the segment's m-th rating; returns (‖p_u‖², the segment's length)."""
    sig = types.Tuple((P.dtype, types.intp))(P, u, Q, USERS, ITEMS, j0, step, stop, D, N, n_chunks)
    names = ("P", "u", "Q", "USERS", "ITEMS", "j0", "step", "stop", "D", "N", "count")

    def codegen(context, builder, signature, args):
        ops = _segment_operands(context, builder, signature.args, args, names)
        (P_ty, parr), (Q_ty, qarr) = ops["P"], ops["Q"]
        dt = P_ty.dtype
        vty = ir.VectorType(context.get_value_type(dt), _lanes(dt))
        wty = ir.VectorType(vty.element, 2 * vty.count)
        count = ops["count"]
        fixed = _fixed_count(signature.args[10])

        def load(ty, arr, row, col, wide):
            v = builder.load(_row_ptr(context, builder, ty, arr, row, col, wty if wide else vty),
                             align=4)  # fmt: skip
            return v if wide else _widened(builder, v)

        kept = None
        if fixed is not None:
            kept = {
                col.constant: load(P_ty, parr, ops["u"], col, wide)
                for col, wide in _units(builder, count, fixed, vty.count)
            }

        def p_of(col, wide):
            return load(P_ty, parr, ops["u"], col, wide) if kept is None else kept[col.constant]

        (sp,) = _wide_sums(builder, wty, count, fixed, 1, lambda c, w: [(p_of(c, w),) * 2])

        def rating_sums(row_i):
            def terms(col, wide):
                q = load(Q_ty, qarr, row_i, col, wide)
                return [(p_of(col, wide), q), (q, q)]

            dots, sq = _wide_sums(builder, wty, count, fixed, 2, terms)
            return _hsum_pair(builder, dots, sq, wty.count)

        m = _segment_dots_loop(context, builder, ops, rating_sums)
        total = _hsum_pair(builder, sp, sp, wty.count)[0]
        return context.make_tuple(builder, signature.return_type, [total, m])

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_wide_segment_gradient(typingctx, GU, su, GI, S, P, u, Q, ITEMS, j0, step, n, C, n_chunks):
    """``simd.simd_segment_gradient`` in 2W-lane vectors: the same operations on every element
    in the same order, so the same bits."""
    sig = types.void(GU, su, GI, S, P, u, Q, ITEMS, j0, step, n, C, n_chunks)
    names = ("GU", "su", "GI", "S", "P", "u", "Q", "ITEMS", "j0", "step", "n", "C", "count")

    def codegen(context, builder, signature, args):
        ops = _segment_operands(context, builder, signature.args, args, names)
        (GU_ty, guarr), (GI_ty, giarr) = ops["GU"], ops["GI"]
        (P_ty, parr), (Q_ty, qarr) = ops["P"], ops["Q"]
        dt = P_ty.dtype
        vty = ir.VectorType(context.get_value_type(dt), _lanes(dt))
        wty = ir.VectorType(vty.element, 2 * vty.count)
        W = vty.count
        count = ops["count"]
        fixed = _fixed_count(signature.args[12])

        def ptr(ty, arr, row, col, wide):
            return _row_ptr(context, builder, ty, arr, row, col, wty if wide else vty)

        def rating(m):  # −2e in 2W lanes
            return _segment_rating(context, builder, ops, m, dt, wty)

        def chunk_step(col, wide, p, acc, bvec, row_i, s):
            b = _narrowed(builder, bvec, W, wide)
            fma = _fma(builder, wty if wide else vty)
            q = builder.load(ptr(Q_ty, qarr, row_i, col, wide), align=4)
            gp = ptr(GI_ty, giarr, s, col, wide)
            g = builder.load(gp, align=4)
            builder.store(builder.call(fma, [b, q, builder.load(acc)]), acc)
            builder.store(builder.call(fma, [b, p, g]), gp, align=4)

        def open_unit(col, wide):
            p = builder.load(ptr(P_ty, parr, ops["u"], col, wide), align=4)
            gu = ptr(GU_ty, guarr, ops["su"], col, wide)
            return p, gu, cgutils.alloca_once_value(builder, builder.load(gu, align=4))

        if fixed is not None:
            units = _units(builder, count, fixed, W)
            opened = [open_unit(col, wide) for col, wide in units]
            with cgutils.for_range(builder, ops["n"]) as loop:
                bvec, row_i, s = rating(loop.index)
                for (col, wide), (p, _, acc) in zip(units, opened, strict=True):
                    chunk_step(col, wide, p, acc, bvec, row_i, s)
            for _, gu, acc in opened:
                builder.store(builder.load(acc), gu, align=4)
            return context.get_dummy_value()

        def unit(col, wide):
            p, gu, acc = open_unit(col, wide)
            with cgutils.for_range(builder, ops["n"]) as loop:
                bvec, row_i, s = rating(loop.index)
                chunk_step(col, wide, p, acc, bvec, row_i, s)
            builder.store(builder.load(acc), gu, align=4)

        _each_unit(builder, count, W, unit)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_wide_step_and_clear(typingctx, X, r, G, s, c, a, n_chunks):
    """``simd.simd_step_and_clear`` in 2W-lane vectors (the same value in every element):
    x_r ← c·x_r + a·g_s and g_s ← 0 over the first n_chunks·W columns."""
    sig = types.void(X, r, G, s, c, a, n_chunks)

    def codegen(context, builder, signature, args):
        vty, count, splats, load = _wide_row_pair(context, builder, signature, args)

        def store(xp, gp, x, g):
            cvec, avec = splats[x.type.count]
            fma = _fma(builder, x.type)
            builder.store(builder.call(fma, [avec, g, builder.fmul(cvec, x)]), xp, align=4)
            builder.store(ir.Constant(x.type, [0.0] * x.type.count), gp, align=4)

        _each_wide_chunk(builder, signature.args[6], count, vty.count, load, store)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_wide_rating_pass(typingctx, GU, su, GI, si, P, u, Q, i, r0, n_chunks):
    """One rating's share of its batch's gradient in 2W-lane vectors, each row loaded once: with
    r0 = r − μ − b_u − b_i, e = r0 − p_u·q_i, GU[su] += −2e·q_i and GI[si] += −2e·p_u. Returns
    (e, ‖q_i‖²), summed as ``simd_wide_segment_dots`` sums them, and the slots take
    ``simd_wide_segment_gradient``'s operations in the same order: a batch walked rating by
    rating this way gives the segment intrinsics' bits (‖p_u‖² is ``simd_wide_sqnorm``'s)."""
    sig = types.UniTuple(P.dtype, 2)(GU, su, GI, si, P, u, Q, i, r0, n_chunks)
    names = ("GU", "su", "GI", "si", "P", "u", "Q", "i", "r0", "count")

    def codegen(context, builder, signature, args):
        ops = _segment_operands(context, builder, signature.args, args, names)
        (GU_ty, guarr), (GI_ty, giarr) = ops["GU"], ops["GI"]
        (P_ty, parr), (Q_ty, qarr) = ops["P"], ops["Q"]
        dt = P_ty.dtype
        vty = ir.VectorType(context.get_value_type(dt), _lanes(dt))
        wty = ir.VectorType(vty.element, 2 * vty.count)
        W = vty.count
        count = ops["count"]
        fixed = _fixed_count(signature.args[9])

        def ptr(ty, arr, row, col, wide):
            return _row_ptr(context, builder, ty, arr, row, col, wty if wide else vty)

        def load(ty, arr, row, col, wide):
            return builder.load(ptr(ty, arr, row, col, wide), align=4)

        def widen(v, wide):
            return v if wide else _widened(builder, v)

        if fixed is not None:
            units = _units(builder, count, fixed, W)
            ps = {col.constant: load(P_ty, parr, ops["u"], col, wide) for col, wide in units}
            qs = {col.constant: load(Q_ty, qarr, ops["i"], col, wide) for col, wide in units}

            def p_of(col, wide):
                return ps[col.constant]

            def q_of(col, wide):
                return qs[col.constant]
        else:

            def p_of(col, wide):
                return load(P_ty, parr, ops["u"], col, wide)

            def q_of(col, wide):
                return load(Q_ty, qarr, ops["i"], col, wide)

        def terms(col, wide):
            q = widen(q_of(col, wide), wide)
            return [(widen(p_of(col, wide), wide), q), (q, q)]

        dots, sq = _wide_sums(builder, wty, count, fixed, 2, terms)
        d, nq = _hsum_pair(builder, dots, sq, wty.count)
        r_ty = signature.args[8]
        e = builder.fsub(context.cast(builder, args[8], r_ty, P_ty.dtype), d)
        bvec = _splat(context, builder, builder.fneg(builder.fadd(e, e)), P_ty.dtype, dt, wty)

        def unit(col, wide):
            b = _narrowed(builder, bvec, W, wide)
            fma = _fma(builder, b.type)
            gu = ptr(GU_ty, guarr, ops["su"], col, wide)
            builder.store(builder.call(fma, [b, q_of(col, wide), builder.load(gu, align=4)]), gu,
                          align=4)  # fmt: skip
            gi = ptr(GI_ty, giarr, ops["si"], col, wide)
            builder.store(builder.call(fma, [b, p_of(col, wide), builder.load(gi, align=4)]), gi,
                          align=4)  # fmt: skip

        if fixed is not None:
            for col, wide in units:
                unit(col, wide)
        else:
            _each_unit(builder, count, W, unit)
        return context.make_tuple(builder, signature.return_type, [e, nq])

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_wide_sqnorm(typingctx, X, r, n_chunks):
    """‖x_r‖² over the first n_chunks·W columns in 2W lanes, summed as
    ``simd_wide_segment_dots`` sums ‖p_u‖²."""
    sig = X.dtype(X, r, n_chunks)

    def codegen(context, builder, signature, args):
        X_ty, r_ty, n_ty = signature.args
        arr = context.make_array(X_ty)(context, builder, args[0])
        row = _as_intp(context, builder, args[1], r_ty)
        count = _as_intp(context, builder, args[2], n_ty)
        dt = X_ty.dtype
        vty = ir.VectorType(context.get_value_type(dt), _lanes(dt))
        wty = ir.VectorType(vty.element, 2 * vty.count)
        fixed = _fixed_count(n_ty)

        def x_of(col, wide):
            ptr = _row_ptr(context, builder, X_ty, arr, row, col, wty if wide else vty)
            v = builder.load(ptr, align=4)
            return v if wide else _widened(builder, v)

        (sq,) = _wide_sums(builder, wty, count, fixed, 1, lambda c, w: [(x_of(c, w),) * 2])
        return _hsum_pair(builder, sq, sq, wty.count)[0]

    return sig, codegen
