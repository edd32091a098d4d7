"""SIMD intrinsics of the training kernels: dot products, norms and row updates in explicit lanes.

Each intrinsic emits LLVM vector code over W lanes (8 float32 or 4 float64) whose summation order is
fixed here, not by the compiler, so a kernel gives the same bits in every compile and with any
number of threads. ``_kernels.training`` and ``_kernels.minibatch`` inline them into their
bodies. Numba's cache does not see an edit to this file from a kernel cached in another: CI keys
its cache on the package's source, and a developer who edits these clears ``__pycache__`` (or
``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


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
    dots, pp, qq = _parity_sums(builder, fma, zero, count, _fixed_count(n_ty), 3, load_chunk)
    return dots, pp, qq, W


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
def simd_dot(typingctx, P, u, Q, i, n_chunks):
    """p_u·q_i over the first n_chunks·W columns, summed as ``simd_dot_sqnorm`` sums it (the
    accumulators of the norms, left unused, are dropped by the compiler)."""
    sig = P.dtype(P, u, Q, i, n_chunks)

    def codegen(context, builder, signature, args):
        dots, _, _, W = _dot_sqnorm_lanes(context, builder, signature, args)
        return _hsum_pair(builder, dots, dots, W)[0]

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
            context.make_array(t)(context, builder, args[k])
            for t, k in zip(tys, (0, 2, 4, 6), strict=True)
        ]
        count = _as_intp(context, builder, args[9], n_ty)
        bvec = _splat(context, builder, args[8], b_ty, dt, vty)
        fma = _fma(builder, vty)

        def load(index):
            col = builder.mul(index, ir.Constant(index.type, W))
            ptrs = [
                _row_ptr(context, builder, t, arr, row, col, vty)
                for t, arr, row in zip(tys, arrays, rows, strict=True)
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


def _elem_ptr(context, builder, aryty, ary, inds):
    """Pointer to ``ary[inds]`` (indices already intp, no wraparound)."""
    return cgutils.get_item_pointer2(
        context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
        strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout, inds=inds,
        wraparound=False,
    )  # fmt: skip


def _parity_sums(builder, fma, zero, count, fixed, n_terms, terms):
    """For each of n_terms terms, Σ over chunks c < count of x_c·y_c, where ``terms(c)`` gives
    every term's (x_c, y_c): in W lanes, even and odd chunks in two sets added at the end (six
    short dependency chains for three terms, not three long ones). A constant count (``fixed``)
    unrolls the loop without changing the order of any addition (a set's first product is
    x·y + 0, which rounds as x·y)."""
    if fixed is not None:
        sets = [[zero] * n_terms, [zero] * n_terms]
        for c in range(fixed):
            pairs = terms(ir.Constant(count.type, c))
            if c < 2 and c + 2 < fixed:
                sets[c % 2] = [builder.fmul(x, y) for x, y in pairs]
            else:
                sets[c % 2] = [
                    builder.call(fma, [x, y, a])
                    for (x, y), a in zip(pairs, sets[c % 2], strict=True)
                ]
        return [builder.fadd(a, b) for a, b in zip(*sets, strict=True)]
    slots = [[cgutils.alloca_once_value(builder, zero) for _ in range(n_terms)] for _ in range(2)]

    def chunk(index, accs):
        for a, (x, y) in zip(accs, terms(index), strict=True):
            builder.store(builder.call(fma, [x, y, builder.load(a)]), a)

    two = ir.Constant(count.type, 2)
    with cgutils.for_range(builder, builder.sdiv(count, two)) as loop:
        first = builder.mul(loop.index, two)
        chunk(first, slots[0])
        chunk(builder.add(first, ir.Constant(count.type, 1)), slots[1])
    odd = builder.icmp_signed("!=", builder.srem(count, two), ir.Constant(count.type, 0))
    with builder.if_then(odd):
        chunk(builder.sub(count, ir.Constant(count.type, 1)), slots[0])
    return [builder.fadd(builder.load(a), builder.load(b)) for a, b in zip(*slots, strict=True)]


def _segment_operands(context, builder, sig_args, args, names):
    """Arrays (type, struct) and intp scalars of an intrinsic's arguments, by name: an upper-case
    name is an array, any other a scalar."""
    out = {}
    for name, ty, value in zip(names, sig_args, args, strict=True):
        if name[0].isupper():
            out[name] = (ty, context.make_array(ty)(context, builder, value))
        else:
            out[name] = _as_intp(context, builder, value, ty)
    return out


def _segment_item(context, builder, ops, m):
    """The item of the segment's m-th rating, ``items[j0 + m·step]``, as intp."""
    it_ty, iarr = ops["ITEMS"]
    pos = builder.add(ops["j0"], builder.mul(m, ops["step"]))
    item = builder.load(_elem_ptr(context, builder, it_ty, iarr, [pos]))
    return context.cast(builder, item, it_ty.dtype, types.intp)


def _segment_rating(context, builder, ops, m, dt, vty):
    """(−2e of the segment's m-th rating, ``C[m]``, in every lane of ``vty``, its item's row,
    its item's slot ``S[m]``), as the segment gradient intrinsics read them."""
    C_ty, carr = ops["C"]
    c = builder.load(_elem_ptr(context, builder, C_ty, carr, [m]))
    S_ty, sarr = ops["S"]
    s = builder.load(_elem_ptr(context, builder, S_ty, sarr, [m]))
    s = context.cast(builder, s, S_ty.dtype, types.intp)
    bvec = _splat(context, builder, c, C_ty.dtype, dt, vty)
    return bvec, _segment_item(context, builder, ops, m), s


def _segment_dots_loop(context, builder, ops, rating_sums):
    """The loop of a segment's dot products (``simd_segment_dots`` and its wide twin): for the
    m-th rating of user ``ops["u"]`` at j0 + m·step (while ``USERS`` says that user and the
    position is below stop), ``rating_sums(row_i)`` gives (p_u·q_i, ‖q_i‖²) for its item row,
    stored to D[m] and N[m]. Returns the segment's length."""
    count = ops["count"]
    m_ptr = cgutils.alloca_once_value(builder, ir.Constant(count.type, 0))
    head = builder.append_basic_block("segment.head")
    body = builder.append_basic_block("segment.body")
    done = builder.append_basic_block("segment.done")
    builder.branch(head)
    builder.position_at_end(head)
    m = builder.load(m_ptr)
    pos = builder.add(ops["j0"], builder.mul(m, ops["step"]))
    inside = builder.icmp_signed("<", pos, ops["stop"])
    # the user at pos, read at stop - 1 past the end (branch-free; never past the array)
    last = builder.sub(ops["stop"], ir.Constant(count.type, 1))
    U_ty, uarr = ops["USERS"]
    at = builder.select(inside, pos, last)
    user = builder.load(_elem_ptr(context, builder, U_ty, uarr, [at]))
    same = builder.icmp_signed("==", context.cast(builder, user, U_ty.dtype, types.intp),
                               ops["u"])  # fmt: skip
    builder.cbranch(builder.and_(inside, same), body, done)
    builder.position_at_end(body)
    d, nq = rating_sums(_segment_item(context, builder, ops, m))
    for name, value in (("D", d), ("N", nq)):
        ty, arr = ops[name]
        builder.store(value, _elem_ptr(context, builder, ty, arr, [m]))
    builder.store(builder.add(m, ir.Constant(count.type, 1)), m_ptr)
    builder.branch(head)
    builder.position_at_end(done)
    return m


@intrinsic(prefer_literal=True)
def simd_segment_dots(typingctx, P, u, Q, USERS, ITEMS, j0, step, stop, D, N, n_chunks):
    """The segment of user u's ratings at j0, j0 + step, ... (while ``USERS`` says u and the
    position is below ``stop``): for its m-th rating, of item i = ``ITEMS[j0 + m·step]``, D[m] =
    p_u·q_i and N[m] = ‖q_i‖² over the first n_chunks·W columns, summed as ``simd_dot_sqnorms``
    sums them. Returns (‖p_u‖², likewise summed, and the segment's length n ≥ 1: users[j0] must
    be u and j0 below stop). With a constant n_chunks, p_u is loaded once for the segment and
    kept in registers."""
    sig = types.Tuple((P.dtype, types.intp))(P, u, Q, USERS, ITEMS, j0, step, stop, D, N, n_chunks)
    names = ("P", "u", "Q", "USERS", "ITEMS", "j0", "step", "stop", "D", "N", "count")

    def codegen(context, builder, signature, args):
        ops = _segment_operands(context, builder, signature.args, args, names)
        (P_ty, parr), (Q_ty, qarr) = ops["P"], ops["Q"]
        dt = P_ty.dtype
        W = _lanes(dt)
        vty = ir.VectorType(context.get_value_type(dt), W)
        count = ops["count"]
        fixed = _fixed_count(signature.args[10])
        fma = _fma(builder, vty)
        zero = ir.Constant(vty, [0.0] * W)

        def col(index):
            return builder.mul(index, ir.Constant(index.type, W))

        def p_chunk(index):
            ptr = _row_ptr(context, builder, P_ty, parr, ops["u"], col(index), vty)
            return builder.load(ptr, align=4)

        kept = None
        if fixed is not None:
            kept = [p_chunk(ir.Constant(count.type, c)) for c in range(fixed)]

        def p_of(index):
            return p_chunk(index) if kept is None else kept[index.constant]

        (sp,) = _parity_sums(builder, fma, zero, count, fixed, 1, lambda c: [(p_of(c), p_of(c))])

        def rating_sums(row_i):
            def terms(index):
                ptr = _row_ptr(context, builder, Q_ty, qarr, row_i, col(index), vty)
                q = builder.load(ptr, align=4)
                return [(p_of(index), q), (q, q)]

            dots, sq = _parity_sums(builder, fma, zero, count, fixed, 2, terms)
            return _hsum_pair(builder, dots, sq, W)

        m = _segment_dots_loop(context, builder, ops, rating_sums)
        total = _hsum_pair(builder, sp, sp, W)[0]
        return context.make_tuple(builder, signature.return_type, [total, m])

    return sig, codegen


@intrinsic(prefer_literal=True)
def simd_segment_gradient(typingctx, GU, su, GI, S, P, u, Q, ITEMS, j0, step, n, C, n_chunks):
    """For the n ratings of user u at ``ITEMS[j0 + m·step]`` (m < n), each with its item's
    gradient slot S[m] and coefficient C[m] = −2e: GU[su] += Σ_m C[m]·q_i, summed in rating
    order (each lane as c_{n-1}·q + (… + (c_0·q + g))), and GI[S[m]] += C[m]·p_u, over the
    first n_chunks·W columns. With a constant n_chunks, the user's slot and p_u stay in
    registers over the segment; otherwise each chunk takes its turn over the segment, which
    gives every element the same operations in the same order."""
    sig = types.void(GU, su, GI, S, P, u, Q, ITEMS, j0, step, n, C, n_chunks)
    names = ("GU", "su", "GI", "S", "P", "u", "Q", "ITEMS", "j0", "step", "n", "C", "count")

    def codegen(context, builder, signature, args):
        ops = _segment_operands(context, builder, signature.args, args, names)
        (GU_ty, guarr), (GI_ty, giarr) = ops["GU"], ops["GI"]
        (P_ty, parr), (Q_ty, qarr) = ops["P"], ops["Q"]
        dt = P_ty.dtype
        W = _lanes(dt)
        vty = ir.VectorType(context.get_value_type(dt), W)
        count = ops["count"]
        fixed = _fixed_count(signature.args[12])
        fma = _fma(builder, vty)

        def ptr(ty, arr, row, index):
            return _row_ptr(context, builder, ty, arr, row, builder.mul(index, ir.Constant(
                index.type, W)), vty)  # fmt: skip

        def rating(m):
            return _segment_rating(context, builder, ops, m, dt, vty)

        def chunk_step(index, p, acc, bvec, row_i, s):
            q = builder.load(ptr(Q_ty, qarr, row_i, index), align=4)
            gp = ptr(GI_ty, giarr, s, index)
            g = builder.load(gp, align=4)
            builder.store(builder.call(fma, [bvec, q, builder.load(acc)]), acc)
            builder.store(builder.call(fma, [bvec, p, g]), gp, align=4)

        if fixed is not None:
            chunks = [ir.Constant(count.type, c) for c in range(fixed)]
            ps = [builder.load(ptr(P_ty, parr, ops["u"], c), align=4) for c in chunks]
            accs = [
                cgutils.alloca_once_value(
                    builder, builder.load(ptr(GU_ty, guarr, ops["su"], c), align=4)
                )
                for c in chunks
            ]
            with cgutils.for_range(builder, ops["n"]) as loop:
                bvec, row_i, s = rating(loop.index)
                for c, p, acc in zip(chunks, ps, accs, strict=True):
                    chunk_step(c, p, acc, bvec, row_i, s)
            for c, acc in zip(chunks, accs, strict=True):
                builder.store(builder.load(acc), ptr(GU_ty, guarr, ops["su"], c), align=4)
            return context.get_dummy_value()
        with cgutils.for_range(builder, count) as outer:
            c = outer.index
            p = builder.load(ptr(P_ty, parr, ops["u"], c), align=4)
            gu = ptr(GU_ty, guarr, ops["su"], c)
            acc = cgutils.alloca_once_value(builder, builder.load(gu, align=4))
            with cgutils.for_range(builder, ops["n"]) as loop:
                bvec, row_i, s = rating(loop.index)
                chunk_step(c, p, acc, bvec, row_i, s)
            builder.store(builder.load(acc), gu, align=4)
        return context.get_dummy_value()

    return sig, codegen


# Wide intrinsics of the per-rating kernel: a row of n_chunks W-lane chunks is taken two chunks
# at a time, in 2W-lane (512-bit) vectors, the last chunk of an odd count on its own. At 64 and
# 128 float32 factors they do half the vector instructions of the W-lane ones for the same work.


def _wide_operands(context, builder, signature, args, n_rows):
    """(narrow and wide vector types, [(array type, array, row)] for the n_rows (array, row)
    pairs that open ``args``, the chunk count as intp) of a wide intrinsic."""
    dt = signature.args[0].dtype
    vty = ir.VectorType(context.get_value_type(dt), _lanes(dt))
    wty = ir.VectorType(vty.element, 2 * vty.count)
    rows = []
    for k in range(n_rows):
        ty, row_ty = signature.args[2 * k], signature.args[2 * k + 1]
        ary = context.make_array(ty)(context, builder, args[2 * k])
        rows.append((ty, ary, _as_intp(context, builder, args[2 * k + 1], row_ty)))
    count = _as_intp(context, builder, args[-1], signature.args[-1])
    return vty, wty, rows, count


def _each_wide_chunk(builder, n_ty, count, W, load, update):
    """``update(*load(column, wide))`` for the row's chunks taken in pairs (wide: column 2W·k)
    and then, for an odd count, its last chunk alone (not wide). With a compile-time count the
    loop is unrolled and every load comes before the first store (see ``_each_chunk``)."""
    fixed = _fixed_count(n_ty)
    if fixed is not None:
        pairs, odd = divmod(fixed, 2)
        loaded = [load(ir.Constant(count.type, 2 * W * k), True) for k in range(pairs)]
        if odd:
            loaded.append(load(ir.Constant(count.type, 2 * W * pairs), False))
        for chunk in loaded:
            update(*chunk)
        return
    two = ir.Constant(count.type, 2)
    with cgutils.for_range(builder, builder.sdiv(count, two)) as loop:
        update(*load(builder.mul(loop.index, ir.Constant(count.type, 2 * W)), True))
    odd = builder.icmp_signed("!=", builder.srem(count, two), ir.Constant(count.type, 0))
    with builder.if_then(odd):
        col = builder.mul(
            builder.sub(count, ir.Constant(count.type, 1)), ir.Constant(count.type, W)
        )
        update(*load(col, False))


def _widened(builder, v):
    """The n lanes of v followed by n zeros."""
    n = v.type.count
    idx = ir.Constant(ir.VectorType(ir.IntType(32), 2 * n), list(range(2 * n)))
    return builder.shuffle_vector(v, ir.Constant(v.type, [0.0] * n), idx)


@intrinsic(prefer_literal=True)
def simd_wide_dot(typingctx, P, u, Q, i, n_chunks):
    """p_u·q_i over the first n_chunks·W columns in 2W lanes: the pairs of chunks go to two
    accumulators by the parity of the pair, the chunk left over by an odd count (its lanes
    widened with zeros) to the first; then the two are added and summed in a fixed tree. A
    constant n_chunks unrolls the loop without changing the order of any addition."""
    sig = P.dtype(P, u, Q, i, n_chunks)

    def codegen(context, builder, signature, args):
        vty, wty, ((P_ty, parr, row_u), (Q_ty, qarr, row_i)), count = _wide_operands(
            context, builder, signature, args, 2
        )
        W = vty.count
        fma = _fma(builder, wty)
        zero = ir.Constant(wty, [0.0] * 2 * W)
        fixed = _fixed_count(signature.args[4])
        pairs = None if fixed is None else fixed // 2
        acc = [cgutils.alloca_once_value(builder, zero) for _ in range(2)]
        seen = [0]  # the pairs summed so far (with a constant count)

        def load(col, wide):
            ty = wty if wide else vty
            p = builder.load(_row_ptr(context, builder, P_ty, parr, row_u, col, ty), align=4)
            q = builder.load(_row_ptr(context, builder, Q_ty, qarr, row_i, col, ty), align=4)
            if not wide:
                return _widened(builder, p), _widened(builder, q), None
            return p, q, builder.trunc(builder.udiv(col, ir.Constant(col.type, 2 * W)),
                                       ir.IntType(1))  # fmt: skip

        def add(p, q, odd_pair):
            slot = acc[0] if odd_pair is None else builder.select(odd_pair, acc[1], acc[0])
            k = seen[0]
            seen[0] += 1
            if pairs is not None and odd_pair is not None and k < 2 and k + 2 < pairs:
                # x·y + 0 rounds as x·y: a plain product where another fma follows (as in
                # ``_dot_sqnorm_lanes``)
                builder.store(builder.fmul(p, q), slot)
            else:
                builder.store(builder.call(fma, [p, q, builder.load(slot)]), slot)

        _each_wide_chunk(builder, signature.args[4], count, W, load, add)
        dots = builder.fadd(builder.load(acc[0]), builder.load(acc[1]))
        return _hsum_pair(builder, dots, dots, 2 * W)[0]

    return sig, codegen


def _wide_row_pair(context, builder, signature, args):
    """What a wide intrinsic called as (A, a, B, b, x, y, n_chunks) over rows A[a] and B[b]
    needs: the W-lane vector type, the chunk count, ``splats[lanes]`` = (x, y) in vectors of that
    many lanes, and ``load(col, wide)`` = (pointer into A[a], pointer into B[b], their vectors)
    at column col, 2W lanes when ``wide``, else W."""
    vty, wty, ((A_ty, aarr, row_a), (B_ty, barr, row_b)), count = _wide_operands(
        context, builder, signature, args, 2
    )
    dt = A_ty.dtype
    x_ty, y_ty = signature.args[4], signature.args[5]
    splats = {
        ty.count: (
            _splat(context, builder, args[4], x_ty, dt, ty),
            _splat(context, builder, args[5], y_ty, dt, ty),
        )
        for ty in (vty, wty)
    }

    def load(col, wide):
        ty = wty if wide else vty
        ap = _row_ptr(context, builder, A_ty, aarr, row_a, col, ty)
        bp = _row_ptr(context, builder, B_ty, barr, row_b, col, ty)
        return ap, bp, builder.load(ap, align=4), builder.load(bp, align=4)

    return vty, count, splats, load


@intrinsic(prefer_literal=True)
def simd_wide_shrink_and_swap(typingctx, P, u, Q, i, c, s, n_chunks):
    """``simd_shrink_and_swap`` in 2W-lane vectors (the same value in every element)."""
    sig = types.void(P, u, Q, i, c, s, n_chunks)

    def codegen(context, builder, signature, args):
        vty, count, splats, load = _wide_row_pair(context, builder, signature, args)

        def store(pp, qp, p, q):
            cvec, svec = splats[p.type.count]
            fma = _fma(builder, p.type)
            builder.store(builder.call(fma, [svec, q, builder.fmul(cvec, p)]), pp, align=4)
            builder.store(builder.call(fma, [svec, p, builder.fmul(cvec, q)]), qp, align=4)

        _each_wide_chunk(builder, signature.args[6], count, vty.count, load, store)
        return context.get_dummy_value()

    return sig, codegen
