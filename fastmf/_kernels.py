"""Training and prediction kernels of the biased matrix-factorization model.

Legend: ``mu`` global mean, ``bu``/``bi`` user/item biases, ``P``/``Q`` user/item factors (one row
per user or item), ``lr`` learning rate η, ``lam`` the factor penalty λ (``reg``), ``lam_b`` the
bias penalty (``reg_bias``), ``batch_size`` the nominal batch size B. For a batch of ratings the
objective is

    L_batch = ( Σ_batch (r − r̂)²  +  Σ_batch λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²) ) / B

and a step is θ ← θ − η ∇θ L_batch for plain SGD. The divisor is B even for a batch that a
block's end cuts short: every rating then weighs 1/B in every step, so an epoch moves, to first
order in η, by η·N/B down the gradient of the mean objective over all N ratings, whatever the
block layout. Every kernel sees arrays and scalars only.

Race policy: the epoch kernels run the blocks of one sub-epoch in parallel. Those blocks share no
user and no item (see ``_schedule``), so every row of ``bu``, ``bi``, ``P``, ``Q`` and of the
optimizer state is written by one thread at a time, and each block writes its own rows of
``point_losses``. Within a block the order of ratings is fixed, and every sum is taken in the order
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
from fastmf._sort_kernels import STREAMS

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


def _lanes(dtype):
    """Vector width: 16 float32 or 8 float64 lanes (512 bits, or two 256-bit halves)."""
    return 8 if dtype == types.float32 else 4


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


def _splat(context, builder, value, ty, dt, vty):
    """A vector with the scalar ``value`` (of numba type ty, converted to dt) in every lane."""
    scalar = context.cast(builder, value, ty, dt)
    undef = ir.Constant(vty, ir.Undefined)
    lane0 = ir.Constant(ir.IntType(32), 0)
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(builder.insert_element(undef, scalar, lane0), undef, zeros)


def _as_intp(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


@intrinsic
def cast_like(typingctx, value, like):
    """``value`` converted to the type of ``like`` (keeps float32 kernels in float32)."""
    sig = like(value, like)

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], signature.args[1])

    return sig, codegen


@intrinsic
def fma(typingctx, x, y, z):
    """x·y + z rounded once (``llvm.fma``), for scalars of one float type: a fused step whose
    rounding does not depend on what the compiler chooses to contract."""
    sig = x(x, y, z)

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.args[0])
        name = "llvm.fma.f32" if ty == ir.FloatType() else "llvm.fma.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * 3), name)
        return builder.call(fn, list(args))

    return sig, codegen


def _fixed_count(n_ty):
    """The chunk count when it is a compile-time constant (its loops are then unrolled)."""
    return n_ty.literal_value if isinstance(n_ty, types.IntegerLiteral) else None


def _each_chunk(builder, n_ty, count, load, update):
    """For chunks 0..count-1: ``update(*load(index))``, where ``load`` reads a chunk's vectors
    and ``update`` writes their new values. With a compile-time count the loop is unrolled and
    every load comes before the first store: the compiler cannot tell that the arrays do not
    overlap, and would otherwise read each chunk again after the previous chunk's store (this way
    it reuses the registers an earlier read of the same rows filled)."""
    fixed = _fixed_count(n_ty)
    if fixed is not None:
        for chunk in [load(ir.Constant(count.type, c)) for c in range(fixed)]:
            update(*chunk)
        return
    with cgutils.for_range(builder, count) as loop:
        update(*load(loop.index))


def _pair_operands(context, builder, signature, args):
    """The operands of an intrinsic called as (A, row_a, B, row_b, x, y, n_chunks): the vector
    type, the two arrays with their types and rows, x and y in every lane, and the chunk count."""
    A_ty, ra_ty, B_ty, rb_ty, x_ty, y_ty, n_ty = signature.args
    dt = A_ty.dtype
    vty = ir.VectorType(context.get_value_type(dt), _lanes(dt))
    a = (A_ty, context.make_array(A_ty)(context, builder, args[0]),
         _as_intp(context, builder, args[1], ra_ty))  # fmt: skip
    b = (B_ty, context.make_array(B_ty)(context, builder, args[2]),
         _as_intp(context, builder, args[3], rb_ty))  # fmt: skip
    xvec = _splat(context, builder, args[4], x_ty, dt, vty)
    yvec = _splat(context, builder, args[5], y_ty, dt, vty)
    return vty, a, b, xvec, yvec, _as_intp(context, builder, args[6], n_ty)


def _hsum_pair(builder, a, b, n):
    """(Σ lanes of a, Σ lanes of b) for two n-lane vectors, reduced together in a fixed tree: each
    level adds the upper half of every group to its lower half."""
    # first level: the lower halves of a and b side by side, plus their upper halves
    h = n // 2
    idx = ir.VectorType(ir.IntType(32), n)
    lo = builder.shuffle_vector(a, b, ir.Constant(idx, list(range(h)) + list(range(n, n + h))))
    hi = builder.shuffle_vector(
        a, b, ir.Constant(idx, list(range(h, n)) + list(range(n + h, 2 * n)))
    )
    v = builder.fadd(lo, hi)  # lanes 0..h-1 hold a's partial sums, h..n-1 b's
    width = n
    while h > 1:
        q = h // 2
        idx = ir.VectorType(ir.IntType(32), 2 * q)
        lo = builder.shuffle_vector(v, v, ir.Constant(idx, list(range(q)) + list(range(h, h + q))))
        hi = builder.shuffle_vector(
            v, v, ir.Constant(idx, list(range(q, h)) + list(range(h + q, width)))
        )
        v = builder.fadd(lo, hi)
        width = 2 * q
        h = q
    zero = ir.Constant(ir.IntType(32), 0)
    one = ir.Constant(ir.IntType(32), 1)
    return builder.extract_element(v, zero), builder.extract_element(v, one)


def _dot_sqnorm_lanes(context, builder, signature, args):
    """The W-lane partial sums (p·q, ‖p‖², ‖q‖²) of an intrinsic called as (P, u, Q, i,
    n_chunks): chunks go to two sets of accumulators by parity, and a constant n_chunks unrolls
    the loop without changing the order of any addition."""
    P_ty, u_ty, Q_ty, i_ty, n_ty = signature.args
    W = _lanes(P_ty.dtype)
    vty = ir.VectorType(context.get_value_type(P_ty.dtype), W)
    parr = context.make_array(P_ty)(context, builder, args[0])
    qarr = context.make_array(Q_ty)(context, builder, args[2])
    row_u = _as_intp(context, builder, args[1], u_ty)
    row_i = _as_intp(context, builder, args[3], i_ty)
    count = _as_intp(context, builder, args[4], n_ty)
    zero = ir.Constant(vty, [0.0] * W)
    fma = _fma(builder, vty)

    def load_chunk(index):
        col = builder.mul(index, ir.Constant(index.type, W))
        p = builder.load(_row_ptr(context, builder, P_ty, parr, row_u, col, vty), align=4)
        q = builder.load(_row_ptr(context, builder, Q_ty, qarr, row_i, col, vty), align=4)
        return ((p, q), (p, p), (q, q))

    # two sets of accumulators (even and odd chunks) and separate ones for ‖p‖² and ‖q‖²:
    # six short dependency chains instead of one long one
    fixed = _fixed_count(n_ty)
    if fixed is not None:
        acc = [[zero] * 3 for _ in range(2)]
        for c in range(fixed):
            for t, (x, y) in enumerate(load_chunk(ir.Constant(count.type, c))):
                # x·y + 0 rounds as x·y, so a set's first product needs no addition; but a
                # plain product that meets the final fadd could be fused into it by the
                # backend, so that happens only where another fma follows
                prev = acc[c % 2][t]
                if c < 2 and c + 2 < fixed:
                    acc[c % 2][t] = builder.fmul(x, y)
                else:
                    acc[c % 2][t] = builder.call(fma, [x, y, prev])
        even, odd_ = acc
    else:
        slots = [[cgutils.alloca_once_value(builder, zero) for _ in range(3)] for _ in range(2)]

        def chunk(index, accs):
            for a, (x, y) in zip(accs, load_chunk(index)):
                builder.store(builder.call(fma, [x, y, builder.load(a)]), a)

        two = ir.Constant(count.type, 2)
        with cgutils.for_range(builder, builder.sdiv(count, two)) as loop:
            first = builder.mul(loop.index, two)
            chunk(first, slots[0])
            chunk(builder.add(first, ir.Constant(count.type, 1)), slots[1])
        odd = builder.icmp_signed("!=", builder.srem(count, two), ir.Constant(count.type, 0))
        with builder.if_then(odd):
            chunk(builder.sub(count, ir.Constant(count.type, 1)), slots[0])
        even, odd_ = ([builder.load(a) for a in accs] for accs in slots)
    dots = builder.fadd(even[0], odd_[0])
    return dots, builder.fadd(even[1], odd_[1]), builder.fadd(even[2], odd_[2]), W


@intrinsic(prefer_literal=True)
def simd_dot_sqnorm(typingctx, P, u, Q, i, n_chunks):
    """(p_u·q_i, ‖p_u‖² + ‖q_i‖²) over the first n_chunks·W columns, summed in W lanes and a
    fixed tree, so the order of every addition is set here and not by the compiler."""
    sig = types.UniTuple(P.dtype, 2)(P, u, Q, i, n_chunks)

    def codegen(context, builder, signature, args):
        dots, sp, sq, W = _dot_sqnorm_lanes(context, builder, signature, args)
        d, n = _hsum_pair(builder, dots, builder.fadd(sp, sq), W)
        return context.make_tuple(builder, signature.return_type, [d, n])

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_dot_sqnorms(typingctx, P, u, Q, i, n_chunks):
    """(p_u·q_i, ‖p_u‖², ‖q_i‖²) over the first n_chunks·W columns, summed as in
    ``simd_dot_sqnorm`` but the two squared norms apart."""
    sig = types.UniTuple(P.dtype, 3)(P, u, Q, i, n_chunks)

    def codegen(context, builder, signature, args):
        dots, sp, sq, W = _dot_sqnorm_lanes(context, builder, signature, args)
        d, np_ = _hsum_pair(builder, dots, sp, W)
        nq = _hsum_pair(builder, sq, sq, W)[0]
        return context.make_tuple(builder, signature.return_type, [d, np_, nq])

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_shrink_and_swap(typingctx, P, u, Q, i, c, s, n_chunks):
    """p_u, q_i ← c·p_u + s·q_i, c·q_i + s·p_u (both from the old rows) over the first
    n_chunks·W columns: the SGD step of one rating, with c = 1 − 2ηλ and s = 2η·e."""
    sig = types.void(P, u, Q, i, c, s, n_chunks)

    def codegen(context, builder, signature, args):
        vty, (P_ty, parr, row_u), (Q_ty, qarr, row_i), cvec, svec, count = _pair_operands(
            context, builder, signature, args
        )
        n_ty = signature.args[6]
        fma = _fma(builder, vty)

        def load(index):
            col = builder.mul(index, ir.Constant(index.type, vty.count))
            pp = _row_ptr(context, builder, P_ty, parr, row_u, col, vty)
            qp = _row_ptr(context, builder, Q_ty, qarr, row_i, col, vty)
            return pp, qp, builder.load(pp, align=4), builder.load(qp, align=4)

        def store(pp, qp, p, q):
            builder.store(builder.call(fma, [svec, q, builder.fmul(cvec, p)]), pp, align=4)
            builder.store(builder.call(fma, [svec, p, builder.fmul(cvec, q)]), qp, align=4)

        _each_chunk(builder, n_ty, count, load, store)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_accumulate_pair(typingctx, GU, su, GI, si, P, u, Q, i, b, n_chunks):
    """GU[su] += b·q_i and GI[si] += b·p_u over the first n_chunks·W columns: one rating's share
    of a batch's gradient (b = −2e; the λ part is added once per row at the step)."""
    sig = types.void(GU, su, GI, si, P, u, Q, i, b, n_chunks)

    def codegen(context, builder, signature, args):
        GU_ty, su_ty, GI_ty, si_ty, P_ty, u_ty, Q_ty, i_ty, b_ty, n_ty = signature.args
        dt = P_ty.dtype
        W = _lanes(dt)
        vty = ir.VectorType(context.get_value_type(dt), W)
        rows = [
            _as_intp(context, builder, args[k], t)
            for k, t in ((1, su_ty), (3, si_ty), (5, u_ty), (7, i_ty))
        ]
        tys = (GU_ty, GI_ty, P_ty, Q_ty)
        arrays = [
            context.make_array(t)(context, builder, args[k]) for t, k in zip(tys, (0, 2, 4, 6))
        ]
        count = _as_intp(context, builder, args[9], n_ty)
        bvec = _splat(context, builder, args[8], b_ty, dt, vty)
        fma = _fma(builder, vty)

        def load(index):
            col = builder.mul(index, ir.Constant(index.type, W))
            ptrs = [
                _row_ptr(context, builder, t, arr, row, col, vty)
                for t, arr, row in zip(tys, arrays, rows)
            ]
            return ptrs, [builder.load(ptr, align=4) for ptr in ptrs]

        def store(ptrs, vectors):
            gu, gi, p, q = vectors
            builder.store(builder.call(fma, [bvec, q, gu]), ptrs[0], align=4)
            builder.store(builder.call(fma, [bvec, p, gi]), ptrs[1], align=4)

        _each_chunk(builder, n_ty, count, load, store)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_grad_sumsq(typingctx, G, s, X, r, m, n_chunks):
    """‖g_s + m·x_r‖² over the first n_chunks·W columns: the squared norm of a row's batch
    gradient (m·x_r its λ part), in W lanes (two sets by chunk parity) and a fixed tree."""
    sig = G.dtype(G, s, X, r, m, n_chunks)

    def codegen(context, builder, signature, args):
        G_ty, s_ty, X_ty, r_ty, m_ty, n_ty = signature.args
        dt = G_ty.dtype
        W = _lanes(dt)
        vty = ir.VectorType(context.get_value_type(dt), W)
        garr = context.make_array(G_ty)(context, builder, args[0])
        xarr = context.make_array(X_ty)(context, builder, args[2])
        slot = _as_intp(context, builder, args[1], s_ty)
        row = _as_intp(context, builder, args[3], r_ty)
        mvec = _splat(context, builder, args[4], m_ty, dt, vty)
        count = _as_intp(context, builder, args[5], n_ty)
        fma = _fma(builder, vty)
        zero = ir.Constant(vty, [0.0] * W)
        slots = [cgutils.alloca_once_value(builder, zero) for _ in range(2)]

        def load(index):
            col = builder.mul(index, ir.Constant(index.type, W))
            g = builder.load(_row_ptr(context, builder, G_ty, garr, slot, col, vty), align=4)
            x = builder.load(_row_ptr(context, builder, X_ty, xarr, row, col, vty), align=4)
            return index, builder.call(fma, [mvec, x, g])

        def add(index, v):
            # chunks alternate between the two sets, by the parity of their index
            odd = builder.trunc(index, ir.IntType(1))
            acc = builder.select(odd, slots[1], slots[0])
            builder.store(builder.call(fma, [v, v, builder.load(acc)]), acc)

        _each_chunk(builder, n_ty, count, load, add)
        total = builder.fadd(builder.load(slots[0]), builder.load(slots[1]))
        return _hsum_pair(builder, total, zero, W)[0]

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_step_and_clear(typingctx, X, r, G, s, c, a, n_chunks):
    """x_r ← c·x_r + a·g_s and g_s ← 0 over the first n_chunks·W columns: one row's optimizer
    step along its batch gradient, leaving the gradient row zero for the next batch."""
    sig = types.void(X, r, G, s, c, a, n_chunks)

    def codegen(context, builder, signature, args):
        vty, (X_ty, xarr, row), (G_ty, garr, slot), cvec, avec, count = _pair_operands(
            context, builder, signature, args
        )
        n_ty = signature.args[6]
        fma = _fma(builder, vty)
        zero = ir.Constant(vty, [0.0] * vty.count)

        def load(index):
            col = builder.mul(index, ir.Constant(index.type, vty.count))
            xp = _row_ptr(context, builder, X_ty, xarr, row, col, vty)
            gp = _row_ptr(context, builder, G_ty, garr, slot, col, vty)
            return xp, gp, builder.load(xp, align=4), builder.load(gp, align=4)

        def store(xp, gp, x, g):
            builder.store(builder.call(fma, [avec, g, builder.fmul(cvec, x)]), xp, align=4)
            builder.store(zero, gp, align=4)

        _each_chunk(builder, n_ty, count, load, store)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def prefetch_row(typingctx, A, r, n_chunks):
    """Ask the processor to bring row r of the 2-d array A into the cache (a hint: it changes
    no value). Used a few ratings ahead, so the rows are in L1 when their rating comes. With a
    constant n_chunks the row is n_chunks·W wide and its cache lines are known at compile time;
    otherwise the row's width is read from A."""
    sig = types.void(A, r, n_chunks)

    def codegen(context, builder, signature, args):
        A_ty, r_ty, n_ty = signature.args
        arr = context.make_array(A_ty)(context, builder, args[0])
        row = _as_intp(context, builder, args[1], r_ty)
        shape = cgutils.unpack_tuple(builder, arr.shape)
        ptr = cgutils.get_item_pointer2(
            context, builder, data=arr.data, shape=shape,
            strides=cgutils.unpack_tuple(builder, arr.strides), layout=A_ty.layout,
            inds=[row, ir.Constant(row.type, 0)], wraparound=False,
        )  # fmt: skip
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        name = "llvm.prefetch.p0" if str(i8p) == "ptr" else "llvm.prefetch.p0i8"
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name
        )
        start = builder.bitcast(ptr, i8p)
        item_bytes = A_ty.dtype.bitwidth // 8

        def line(index):
            at = builder.gep(start, [builder.mul(index, ir.Constant(row.type, 64))])
            # read access, keep in all cache levels, data cache
            builder.call(fn, [at, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])

        fixed = _fixed_count(n_ty)
        if fixed is not None:
            n_lines = -(-fixed * _lanes(A_ty.dtype) * item_bytes // 64)
            for c in range(n_lines):
                line(ir.Constant(row.type, c))
            return context.get_dummy_value()
        n_bytes = builder.mul(shape[1], ir.Constant(row.type, item_bytes))
        n_lines = builder.sdiv(
            builder.add(n_bytes, ir.Constant(row.type, 63)), ir.Constant(row.type, 64)
        )
        with cgutils.for_range(builder, n_lines) as loop:
            line(loop.index)
        return context.get_dummy_value()

    return sig, codegen


PREFETCH_AHEAD = 16  # ratings ahead whose rows are prefetched (measured best of 4 to 64)


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
def chunked_dot_and_sqnorms(P, u, Q, i, n_chunks, has_rest):
    """p_u·q_i, ‖p_u‖² and ‖q_i‖², as ``chunked_dot_and_sqnorm`` with the norms apart."""
    d, sp, sq = simd_dot_sqnorms(P, u, Q, i, n_chunks)
    if has_rest:
        for f in range(n_chunks * lanes_of(P), P.shape[1]):
            d += P[u, f] * Q[i, f]
            sp += P[u, f] * P[u, f]
            sq += Q[i, f] * Q[i, f]
    return d, sp, sq


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
    lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, n_chunks, has_rest
):  # fmt: skip
    """The body of ``sgd_block``: the row is n_chunks SIMD chunks, plus the columns left over
    when ``has_rest``."""
    k = P.shape[1]
    W = lanes_of(P)
    base = 0.0
    regl = 0.0
    step = lr + lr
    shrink = 1 - step * lam
    for j in range(lo, hi):
        u = users[j]
        i = items[j]
        if j + PREFETCH_AHEAD < hi:
            # the block interleaves STREAMS runs of ratings: a user's earlier rating in its own
            # run is STREAMS places back, and its row was prefetched then (kept inline: as an
            # inlined helper of its own it made the epoch 1.5 times slower)
            ahead = users[j + PREFETCH_AHEAD]
            if ahead != users[j + PREFETCH_AHEAD - STREAMS]:
                prefetch_row(P, ahead, n_chunks)
            prefetch_row(Q, items[j + PREFETCH_AHEAD], n_chunks)
        b_u = bu[u]
        b_i = bi[i]
        # the part of the error that does not wait for the dot product
        r0 = values[j] - mu - b_u - b_i
        d, sq = chunked_dot_and_sqnorm(P, u, Q, i, n_chunks, has_rest)
        e = r0 - d
        base += e * e
        regl += lam * sq + lam_b * (b_u * b_u + b_i * b_i)
        se = step * e
        # the factors step first, with no store in between, so the rows the dot product loaded
        # are still in registers
        simd_shrink_and_swap(P, u, Q, i, shrink, se, n_chunks)
        if has_rest:
            for f in range(n_chunks * W, k):
                pf = P[u, f]
                qf = Q[i, f]
                P[u, f] = shrink * pf + se * qf
                Q[i, f] = shrink * qf + se * pf
        if learn_bias:
            bu[u] = b_u + step * (e - lam_b * b_u)
            bi[i] = b_i + step * (e - lam_b * b_i)
    return base, regl


@njit(**JIT)
def sgd_block(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias):
    """Per-rating SGD (batch size 1) over ratings lo..hi of one block.

    Updates bu, bi (when ``learn_bias``), P and Q in place; returns the sums of the base and the
    regularization loss, each rating's taken at the parameters before its step. The common factor
    counts (2, 4, 8 or 16 chunks of W) run a body compiled for their width, with every loop over
    the row unrolled; the arithmetic, and so every bit of the result, is the same as the general
    body's.
    """
    n_chunks = P.shape[1] // lanes_of(P)
    whole = P.shape[1] % lanes_of(P) == 0
    if whole and n_chunks == 8:
        return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
                           learn_bias, 8, False)  # fmt: skip
    if whole and n_chunks == 4:
        return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
                           learn_bias, 4, False)  # fmt: skip
    if whole and n_chunks == 16:
        return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
                           learn_bias, 16, False)  # fmt: skip
    if whole and n_chunks == 2:
        return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
                           learn_bias, 2, False)  # fmt: skip
    return sgd_ratings(lo, hi, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
                       learn_bias, n_chunks, not whole)  # fmt: skip


@njit(**JIT_INLINE)
def step_row(X, S1, S2, r, G, s, m, opt, lr, scale, corr1, corr2, n_chunks, has_rest):
    """Row r of X takes one optimizer step along its batch gradient ``(G[s] + m·X[r]) * scale``
    (m·X[r] is the λ part, from the row's rating count), and G[s] is zeroed. S1 and S2 hold the
    row's optimizer state (AdaGrad's sum of squares; Adam's two moments). The row is n_chunks
    SIMD chunks, plus the columns left over when ``has_rest``."""
    k = X.shape[1]
    if opt == SGD or opt == ROW_ADAGRAD or opt == DAMPED_SGD:
        rate = lr
        if opt == ROW_ADAGRAD:
            # one sum of squares per row (the mean square of its gradients), as LIBMF keeps it
            sq = simd_grad_sumsq(G, s, X, r, m, n_chunks)
            if has_rest:
                for f in range(n_chunks * lanes_of(X), k):
                    g = G[s, f] + m * X[r, f]
                    sq += g * g
            acc = S1[r, 0] + sq * (scale * scale) / k
            S1[r, 0] = acc
            rate = lr / (np.sqrt(acc) + cast_like(EPS, lr))
        a = -(rate * scale)
        c = 1 + a * m
        simd_step_and_clear(X, r, G, s, c, a, n_chunks)
        if has_rest:
            for f in range(n_chunks * lanes_of(X), k):
                X[r, f] = c * X[r, f] + a * G[s, f]
                G[s, f] = 0
    else:
        step_row_elementwise(X, S1, S2, r, G, s, m, opt, lr, scale, corr1, corr2)


@njit(**JIT)
def step_row_elementwise(X, S1, S2, r, G, s, m, opt, lr, scale, corr1, corr2):
    """``step_row`` for the optimizers with state per element (AdaGrad, Adam). Compiled once and
    called, not inlined: each unrolled body of the batch kernel would otherwise carry its own
    copy, and compiling them took seconds."""
    k = X.shape[1]
    eps = cast_like(EPS, lr)
    if opt == ADAGRAD:
        for f in range(k):
            g = (G[s, f] + m * X[r, f]) * scale
            G[s, f] = 0
            acc = S1[r, f] + g * g
            S1[r, f] = acc
            X[r, f] = X[r, f] - lr * g / (np.sqrt(acc) + eps)
    else:
        b1 = cast_like(ADAM_BETA1, lr)
        b2 = cast_like(ADAM_BETA2, lr)
        c1 = cast_like(1 - ADAM_BETA1, lr)
        c2 = cast_like(1 - ADAM_BETA2, lr)
        for f in range(k):
            g = (G[s, f] + m * X[r, f]) * scale
            G[s, f] = 0
            mom = b1 * S1[r, f] + c1 * g
            v = b2 * S2[r, f] + c2 * g * g
            S1[r, f] = mom
            S2[r, f] = v
            X[r, f] = X[r, f] - lr * (mom / corr1) / (np.sqrt(v / corr2) + eps)


@njit(**JIT_INLINE)
def step_scalar(x, S1, S2, r, g, opt, lr, corr1, corr2):
    """The new value of one bias x = b[r] after an optimizer step along g (state updated)."""
    if opt == SGD:
        return x - lr * g
    eps = cast_like(EPS, lr)
    if opt == ADAGRAD or opt == ROW_ADAGRAD:
        S1[r] = S1[r] + g * g
        return x - lr * g / (np.sqrt(S1[r]) + eps)
    S1[r] = cast_like(ADAM_BETA1, lr) * S1[r] + cast_like(1 - ADAM_BETA1, lr) * g
    S2[r] = cast_like(ADAM_BETA2, lr) * S2[r] + cast_like(1 - ADAM_BETA2, lr) * g * g
    return x - lr * (S1[r] / corr1) / (np.sqrt(S2[r] / corr2) + eps)


@njit(**JIT_INLINE)
def claim_slot(slot_of, rows, counts, r, n):
    """Row r's slot in the batch's gradient rows, counting the rating: a new slot, n, the first
    time the batch meets r (slots are zero until then). Returns the slot and the number of slots
    in use. Branch-free: whether a row is new is a coin toss the processor would often guess
    wrong, so the row is always written to ``rows[n]`` and n grows only for a new one."""
    old = slot_of[r]
    new = old < 0
    s = old + (n - old) * new
    slot_of[r] = s
    rows[n] = r
    counts[s] += 1
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
    n, rows, slot_of, counts, b, X, G, Gb, H, learn_bias, damped, lr, scale, lam2, lam_b2,
    n_chunks, has_rest,
):  # fmt: skip
    """``step_touched_rows`` for plain and damped SGD, which keep no optimizer state. A loop of
    its own, with no reference to the state arrays, runs the step of a batch of 1024 about half
    as fast again (measured on one block of the 5M twin: 28 against 55 ns a rating). Every
    product that meets a sum is an explicit ``fma``, so the rounding is the same in every body
    this loop is inlined into."""
    one = cast_like(1.0, lr)
    ls = lr * scale
    k_b = one + one + lam_b2  # a bias's curvature a rating, 2 + 2λ_b
    for s in range(n):
        r = rows[s]
        slot_of[r] = -1
        c = cast_like(counts[s], lr)
        counts[s] = 0
        m = c * lam2
        rate = lr
        if damped:
            rate = lr / fma(ls, fma(c, lam2, H[s] + H[s]), one)
        H[s] = 0
        if learn_bias:
            rate_b = lr
            if damped:
                rate_b = lr / fma(ls * c, k_b, one)
            g = fma(c * lam_b2, b[r], Gb[s]) * scale
            b[r] = fma(-rate_b, g, b[r])
        Gb[s] = 0
        a = -(rate * scale)
        shrink = fma(a, m, one)
        simd_step_and_clear(X, r, G, s, shrink, a, n_chunks)
        if has_rest:
            for f in range(n_chunks * lanes_of(X), X.shape[1]):
                X[r, f] = fma(a, G[s, f], shrink * X[r, f])
                G[s, f] = 0


@njit(**JIT_INLINE)
def step_touched_rows(
    n, rows, slot_of, counts, steps, b, b_s1, b_s2, X, X_s1, X_s2, G, Gb, H, learn_bias, opt, lr,
    scale, lam2, lam_b2, n_chunks, has_rest,
):  # fmt: skip
    """The batch's step for the n rows it touched (one side: users or items). The row in slot s,
    with c ratings in the batch, has the gradient Σ −2e·(other row) gathered in ``G[s]``
    (``Gb[s]`` for its bias) plus c times its own penalty's, 2λ·x_r (2λ_b·b_r): its bias and
    factors step along that, and its slot goes back to zero and free. ``H[s]`` holds Σ ‖other
    row‖² over the row's ratings: with ``DAMPED_SGD`` the row's curvature in L_batch is at most
    h = (2·H[s] + c·2λ)/B (h_b = c·(2 + 2λ_b)/B for its bias), and its rate is η/(1 + η·h)."""
    if opt == SGD or opt == DAMPED_SGD:
        step_touched_rows_sgd(n, rows, slot_of, counts, b, X, G, Gb, H, learn_bias, opt == DAMPED_SGD,
                              lr, scale, lam2, lam_b2, n_chunks, has_rest)  # fmt: skip
        return
    for s in range(n):
        r = rows[s]
        slot_of[r] = -1
        c = cast_like(counts[s], lr)
        counts[s] = 0
        corr1, corr2 = bias_corrections(steps, r, opt, lr)
        rate = lr
        rate_b = lr
        if opt == DAMPED_SGD:
            one = cast_like(1.0, lr)
            rate = lr / (one + lr * scale * (H[s] + H[s] + c * lam2))
            rate_b = lr / (one + lr * scale * c * (one + one + lam_b2))
        H[s] = 0
        if learn_bias:
            g = (Gb[s] + c * lam_b2 * b[r]) * scale
            if opt == DAMPED_SGD:
                b[r] = b[r] - rate_b * g
            else:
                b[r] = step_scalar(b[r], b_s1, b_s2, r, g, opt, lr, corr1, corr2)
        Gb[s] = 0
        m = c * lam2
        step_row(X, X_s1, X_s2, r, G, s, m, opt, rate, scale, corr1, corr2, n_chunks, has_rest)


@njit(**JIT_INLINE)
def batch_ratings(
    lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
    state, scratch, n_chunks, has_rest,
):  # fmt: skip
    """The body of ``batch_block``, with its optimizer state and scratch arrays in two tuples (a
    call of more than 30 arguments cannot be inlined): the row is n_chunks SIMD chunks, plus the
    columns left over when ``has_rest``."""
    bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps = state
    gU, gUb, hU, counts_u, rows_u, slot_u, gI, gIb, hI, counts_i, rows_i, slot_i = scratch
    k = P.shape[1]
    W = lanes_of(P)
    base = 0.0
    regl = 0.0
    lam2 = lam + lam
    lam_b2 = lam_b + lam_b
    # the nominal batch size, also for a batch cut short by the end of the block
    scale = cast_like(1.0 / batch_size, lr)
    start = lo
    while start < hi:
        stop = min(start + batch_size, hi)
        n_u = 0
        n_i = 0
        for j in range(start, stop):
            u = users[j]
            i = items[j]
            if j + PREFETCH_AHEAD < hi:
                ahead = users[j + PREFETCH_AHEAD]
                if ahead != users[j + PREFETCH_AHEAD - STREAMS]:  # as in sgd_ratings
                    prefetch_row(P, ahead, n_chunks)
                prefetch_row(Q, items[j + PREFETCH_AHEAD], n_chunks)
            su, n_u = claim_slot(slot_u, rows_u, counts_u, u, n_u)
            si, n_i = claim_slot(slot_i, rows_i, counts_i, i, n_i)
            b_u = bu[u]
            b_i = bi[i]
            r0 = values[j] - mu - b_u - b_i
            d, sp, sq = chunked_dot_and_sqnorms(P, u, Q, i, n_chunks, has_rest)
            e = r0 - d
            base += e * e
            regl += lam * (sp + sq) + lam_b * (b_u * b_u + b_i * b_i)
            hU[su] += sq  # the squared norms of each row's partners, for DAMPED_SGD's rate
            hI[si] += sp
            e2 = e + e
            simd_accumulate_pair(gU, su, gI, si, P, u, Q, i, -e2, n_chunks)
            if has_rest:
                for f in range(n_chunks * W, k):
                    gU[su, f] -= e2 * Q[i, f]
                    gI[si, f] -= e2 * P[u, f]
            gUb[su] -= e2
            gIb[si] -= e2
        step_touched_rows(n_u, rows_u, slot_u, counts_u, u_steps, bu, bu_s1, bu_s2, P, P_s1, P_s2,
                          gU, gUb, hU, learn_bias, opt, lr, scale, lam2, lam_b2, n_chunks,
                          has_rest)  # fmt: skip
        step_touched_rows(n_i, rows_i, slot_i, counts_i, i_steps, bi, bi_s1, bi_s2, Q, Q_s1, Q_s2,
                          gI, gIb, hI, learn_bias, opt, lr, scale, lam2, lam_b2, n_chunks,
                          has_rest)  # fmt: skip
        start = stop
    return base, regl


@njit(**JIT)
def batch_block(
    lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
    bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps,
    gU, gUb, hU, counts_u, rows_u, slot_u, gI, gIb, hI, counts_i, rows_i, slot_i,
):  # fmt: skip
    """Mini-batches of ``batch_size`` consecutive ratings over ratings lo..hi of one block.

    Each batch's gradient of L_batch (divided by ``batch_size``, also for the short batch at
    the end) is taken at the parameters at the batch's start, then every row
    the batch touches takes one optimizer step (rows it does not touch keep their state). Updates
    bu, bi, P, Q and the optimizer state in place; returns the sums of the base and regularization
    loss over the ratings. The calling thread's scratch holds, per side, a batch's gradient slots
    gU, gI (gUb, gIb for the biases; hU, hI for the partners' squared norms; zero between
    batches), each slot's rating count and model row; ``slot_u``/``slot_i`` give each model row's slot (-1 when free). As in ``sgd_block``, 8
    chunks of W (64 float32 factors, 32 float64) run a body compiled for that width; the other
    widths share the general body (each unrolled body adds seconds of compile time, and the
    batch kernel has many optimizers' code).
    """
    state = (bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps)
    scratch = (gU, gUb, hU, counts_u, rows_u, slot_u, gI, gIb, hI, counts_i, rows_i, slot_i)
    n_chunks = P.shape[1] // lanes_of(P)
    whole = P.shape[1] % lanes_of(P) == 0
    if whole and n_chunks == 8:
        return batch_ratings(
            lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
            learn_bias, opt, state, scratch, 8, False,
        )  # fmt: skip
    return batch_ratings(
        lo, hi, batch_size, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b,
        learn_bias, opt, state, scratch, n_chunks, not whole,
    )  # fmt: skip


@njit(parallel=True, **JIT)
def sgd_epoch(
    users, items, values, point_bounds, block_points, shift_order, assign_offsets, assign_blocks,
    mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, point_losses,
):  # fmt: skip
    """One epoch of per-rating SGD: for each shift in ``shift_order``, its blocks in parallel.

    Block b owns the loss points ``block_points[b]:block_points[b + 1]``; point p is the run of
    ratings ``point_bounds[p]:point_bounds[p + 1]`` (with one point per block, the block itself).
    Updates bu, bi, P, Q in place (rows are owned by one block at a time: no races) and writes
    each point's base and regularization loss sums into ``point_losses[p]``.
    """
    n_workers = assign_offsets.shape[1] - 1
    for s in range(shift_order.shape[0]):
        t = shift_order[s]
        for w in prange(n_workers):
            for j in range(assign_offsets[t, w], assign_offsets[t, w + 1]):
                b = assign_blocks[t, j]
                for p in range(block_points[b], block_points[b + 1]):
                    base, regl = sgd_block(
                        point_bounds[p], point_bounds[p + 1], users, items, values,
                        mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias,
                    )  # fmt: skip
                    point_losses[p, 0] = base
                    point_losses[p, 1] = regl


@njit(parallel=True, **JIT)
def batch_epoch(
    users, items, values, point_bounds, block_points, shift_order, assign_offsets, assign_blocks,
    batch_size, mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
    bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps,
    gU, gUb, hU, counts_u, rows_u, slot_u, gI, gIb, hI, counts_i, rows_i, slot_i, point_losses,
):  # fmt: skip
    """One epoch of mini-batch training with optimizer ``opt``; the parallel twin of
    ``sgd_epoch`` for any batch size and optimizer. Every point starts a batch (its bounds are
    whole batches from its block's start), so the batches are the same however the block is cut
    into points. The gradient slots, their counts and rows have one slice per worker; the slot of
    each model row is shared (a block owns its rows). Updates parameters and optimizer state in
    place (no races, as in ``sgd_epoch``)."""
    n_workers = assign_offsets.shape[1] - 1
    for s in range(shift_order.shape[0]):
        t = shift_order[s]
        for w in prange(n_workers):
            for j in range(assign_offsets[t, w], assign_offsets[t, w + 1]):
                b = assign_blocks[t, j]
                for p in range(block_points[b], block_points[b + 1]):
                    base, regl = batch_block(
                        point_bounds[p], point_bounds[p + 1], batch_size, users, items, values,
                        mu, bu, bi, P, Q, lr, lam, lam_b, learn_bias, opt,
                        bu_s1, bu_s2, bi_s1, bi_s2, P_s1, P_s2, Q_s1, Q_s2, u_steps, i_steps,
                        gU[w], gUb[w], hU[w], counts_u[w], rows_u[w], slot_u,
                        gI[w], gIb[w], hI[w], counts_i[w], rows_i[w], slot_i,
                    )  # fmt: skip
                    point_losses[p, 0] = base
                    point_losses[p, 1] = regl


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
