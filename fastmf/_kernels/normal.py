"""A counter-based N(0, 1) draw, for the factors a fresh fit starts from.

Element e of a draw has a splitmix64 stream of its own, started from the splitmix64 hash of
``seed + e·γ`` (γ the golden-ratio increment), whose 64-bit outputs Marsaglia and Tsang's
ziggurat (128 layers; the layer from the low 7 bits, the value from the high 32, so the two are
independent) turns into a standard normal. An element's value is a function of the seed and its
index alone: the draw's bits never depend on how the elements are shared out to threads. The
kernel is compiled without fast-math flags, so the accept tests are IEEE's and
``tests/train/test_initial_draw.py``'s pure-Python twin gives the same bits.

The first word of eight elements at a time is drawn in vector lanes (``first_words``, LLVM IR:
the words' 64-bit multiplies, the layer tables read by gathers), which settles about 97% of
them; the others are drawn again from the start of their stream by the scalar ``_ziggurat``.
The IR helpers live in this module, so Numba's cache (keyed on this file's stamp) recompiles
the kernel after an edit to them.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import binding as ll
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf._kernels.jit import JIT, sized_kernel

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
ZIGGURAT_R = 3.442619855899  # where the ziggurat's base layer meets the tail
_V = 9.91256303526217e-3  # the area of each layer


def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marsaglia and Tsang's 128-layer tables for 32-bit signed draws: the fast-accept bounds
    ``kn`` (int64), the widths ``wn`` and the densities ``fn`` at each layer's edge."""
    m1 = 2.0**31
    dn = tn = ZIGGURAT_R
    q = _V / math.exp(-0.5 * dn * dn)
    kn, wn, fn = np.zeros(128, np.int64), np.zeros(128), np.zeros(128)
    kn[0], kn[1] = int((dn / q) * m1), 0
    wn[0], wn[127] = q / m1, dn / m1
    fn[0], fn[127] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_V / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int((dn / tn) * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


KN, WN, FN = ziggurat_tables()

NORMAL_JIT = {**JIT, "fastmath": False}  # IEEE arithmetic: the accept tests as written
_INLINE = {**NORMAL_JIT, "inline": "always"}


LANES = 8  # elements of one vector pass of the first word
CHUNK = 1024  # elements a thread takes at a time (a multiple of LANES)


@sized_kernel(**NORMAL_JIT)
def normal_fill(out, seed, first, std, kn, wn, fn):
    """``out[e]`` = std × the standard normal of element ``first + e`` of the draw ``seed``
    (uint64), for every e in parallel (each element written by one thread, its value a
    function of the seed and its index alone).

    Each thread takes CHUNK elements at a time, LANES at a time through their ziggurat's first
    word in vector lanes (``first_words``); the few that word does not settle (about 2.8%) are
    then drawn again one at a time by ``_ziggurat``, from the start of their stream, so every
    element gets the same words. The elements past the chunk's last whole LANES join them
    (one inlined ``_ziggurat``: half the compile of two)."""
    n = out.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        pending = np.empty(CHUNK, np.int64)
        k = 0
        e = lo
        while e + LANES <= hi:  # k <= e - lo, so k + LANES <= CHUNK: the lanes fit in pending
            k = first_words(out, e, seed, first, std, kn, wn, pending, k)
            e += LANES
        for t in range(e, hi):  # past the last whole LANES: drawn one at a time too
            pending[k] = t
            k += 1
        for t in range(k):
            out[pending[t]] = _ziggurat(_start(seed, first + pending[t]), kn, wn, fn) * std


@njit(**_INLINE)
def _start(seed, index):
    """The state of element ``index``'s stream before its first word. (Scalars only: an
    inlined helper taking the arrays costs two atomic reference counts an array a call.)"""
    return _mix(seed + np.uint64(index) * GAMMA)


@njit(**_INLINE)
def _mix(z):
    """splitmix64's output function: a bijection of 64-bit words."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**_INLINE)
def _uniform(state):
    """The next word of the stream ``state`` as a uniform in (0, 1), and the next state."""
    state = state + GAMMA
    return ((_mix(state) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0), state


@njit(**_INLINE)
def _ziggurat(state, kn, wn, fn):
    """One standard normal from the splitmix64 stream ``state`` (ziggurat, 128 layers)."""
    while True:
        state = state + GAMMA
        bits = _mix(state)
        iz = np.int64(bits & np.uint64(127))
        hz = np.int64(np.int32(np.uint32(bits >> np.uint64(32))))
        x = hz * wn[iz]
        if abs(hz) < kn[iz]:
            return x
        if iz == 0:  # beyond R: the tail, by Marsaglia's exponential rejection
            while True:
                u1, state = _uniform(state)
                u2, state = _uniform(state)
                t = -math.log(u1) / ZIGGURAT_R
                if -2.0 * math.log(u2) >= t * t:
                    return ZIGGURAT_R + t if hz > 0 else -ZIGGURAT_R - t
        u, state = _uniform(state)
        if fn[iz] + u * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
            return x


# The first word of LANES elements in vector lanes, in LLVM IR: Numba's loop vectorizer leaves
# the table lookups (gathers) scalar, and with them the whole loop. Integer operations wrap as
# numpy's uint64 do and the float ones carry no fast-math flags, so each lane computes the bits
# ``_ziggurat``'s first pass computes.

_I1, _I32, _I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
_F32, _F64 = ir.FloatType(), ir.DoubleType()
_V64 = ir.VectorType(_I64, LANES)


def _lanes_of(value: int) -> ir.Constant:
    """The 64-bit word ``value`` (unsigned) in every lane."""
    value = int(value) & 0xFFFFFFFFFFFFFFFF
    return ir.Constant(_V64, [value - (1 << 64) if value >> 63 else value] * LANES)


def _splat(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """The scalar ``value`` in every lane."""
    vty = ir.VectorType(value.type, LANES)
    undef = ir.Constant(vty, ir.Undefined)
    lane0 = builder.insert_element(undef, value, ir.Constant(_I32, 0))
    zeros = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
    return builder.shuffle_vector(lane0, undef, zeros)


def _mix_lanes(builder: ir.IRBuilder, z: ir.Value) -> ir.Value:
    """``_mix`` in every lane."""
    z = builder.mul(builder.xor(z, builder.lshr(z, _lanes_of(30))), _lanes_of(_M1))
    z = builder.mul(builder.xor(z, builder.lshr(z, _lanes_of(27))), _lanes_of(_M2))
    return builder.xor(z, builder.lshr(z, _lanes_of(31)))


_IR_TYPES = {  # numba's element type: (LLVM's, its bytes, its name in intrinsics)
    types.int32: (_I32, 4, "i32"),
    types.int64: (_I64, 8, "i64"),
    types.float32: (_F32, 4, "f32"),
    types.float64: (_F64, 8, "f64"),
}


def _pointer_name(elem: ir.Type) -> str:
    """A pointer to ``elem`` in an intrinsic's name: "p0", or "p0f64" (say) with the typed
    pointers of LLVM before 15."""
    return "p0" if str(elem.as_pointer()) == "ptr" else f"p0{elem}"


def _gather(builder: ir.IRBuilder, data: ir.Value, dtype: types.Type, index: ir.Value) -> ir.Value:
    """``data[index]`` in every lane, for a table ``data`` of numba element type ``dtype``."""
    elem, size, name = _IR_TYPES[dtype]
    vty, mask_ty = ir.VectorType(elem, LANES), ir.VectorType(_I1, LANES)
    address = builder.add(
        _splat(builder, builder.ptrtoint(data, _I64)), builder.mul(index, _lanes_of(size))
    )
    ptrs = builder.inttoptr(address, ir.VectorType(elem.as_pointer(), LANES))
    fnty = ir.FunctionType(vty, [ptrs.type, _I32, mask_ty, vty])
    fn = cgutils.get_or_insert_function(
        builder.module, fnty, f"llvm.masked.gather.v{LANES}{name}.v{LANES}{_pointer_name(elem)}"
    )
    every = ir.Constant(mask_ty, [1] * LANES)
    return builder.call(fn, [ptrs, ir.Constant(_I32, size), every, ir.Constant(vty, ir.Undefined)])


def _first_words_ir(context, builder, signature, args):
    """Lanes e to e + LANES - 1: each one's first word and its value stored; the lanes whose
    word the ziggurat does not accept at once appended to ``pending`` from ``k``; the new k."""
    out_ty, _, _, _, _, kn_ty, wn_ty, pending_ty, _ = signature.args
    out, e, seed, first, std, kn, wn, pending, k = args
    out_a = context.make_array(out_ty)(context, builder, out)
    kn_a = context.make_array(kn_ty)(context, builder, kn)
    wn_a = context.make_array(wn_ty)(context, builder, wn)
    pending_a = context.make_array(pending_ty)(context, builder, pending)
    lane = ir.Constant(_V64, list(range(LANES)))
    index = builder.add(_splat(builder, builder.add(first, e)), lane)
    start = builder.add(_splat(builder, seed), builder.mul(index, _lanes_of(GAMMA)))
    bits = _mix_lanes(builder, builder.add(_mix_lanes(builder, start), _lanes_of(GAMMA)))
    iz = builder.and_(bits, _lanes_of(127))
    hz = builder.ashr(bits, _lanes_of(32))  # the high 32 bits as a signed int32, in 64
    x = builder.fmul(
        builder.sitofp(hz, ir.VectorType(_F64, LANES)), _gather(builder, wn_a.data, wn_ty.dtype, iz)
    )
    value = builder.fmul(x, _splat(builder, std))
    elem = _IR_TYPES[out_ty.dtype][0]
    if elem is not _F64:
        value = builder.fptrunc(value, ir.VectorType(elem, LANES))
    target = builder.gep(out_a.data, [e])
    builder.store(value, builder.bitcast(target, value.type.as_pointer()), align=4)
    bound = _gather(builder, kn_a.data, kn_ty.dtype, iz)
    if bound.type.element is not _I64:
        bound = builder.sext(bound, _V64)
    negative = builder.icmp_signed("<", hz, ir.Constant(_V64, [0] * LANES))
    rejected = builder.icmp_signed(">=", builder.select(negative, builder.neg(hz), hz), bound)
    return _append_lanes(builder, builder.add(_splat(builder, e), lane), rejected, pending_a, k)


# LLVM 19 and later compress a vector in registers (AVX-512's vpcompressq with a register
# target): storing it whole is faster than a compressing store to memory, which some CPUs
# microcode.
_COMPRESS_IN_REGISTERS = ll.llvm_version_info >= (19,)


def _append_lanes(builder, values, mask, pending_a, k):
    """``values``' lanes where ``mask`` is set written to ``pending`` from k on, in lane order;
    k + their count. (Compressed in registers, the whole vector is stored: the lanes past the
    count are scratch, overwritten by the next call or never read.)"""
    target = builder.gep(pending_a.data, [k])
    if _COMPRESS_IN_REGISTERS:
        compress = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(_V64, [_V64, mask.type, _V64]),
            f"llvm.experimental.vector.compress.v{LANES}i64",
        )
        packed = builder.call(compress, [values, mask, ir.Constant(_V64, ir.Undefined)])
        builder.store(packed, builder.bitcast(target, _V64.as_pointer()), align=8)
    else:
        fnty = ir.FunctionType(ir.VoidType(), [_V64, target.type, mask.type])
        store = cgutils.get_or_insert_function(
            builder.module, fnty, f"llvm.masked.compressstore.v{LANES}i64"
        )
        builder.call(store, [values, target, mask])
    word = builder.zext(builder.bitcast(mask, ir.IntType(LANES)), _I64)
    ctpop = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I64, [_I64]), "llvm.ctpop.i64"
    )
    return builder.add(k, builder.call(ctpop, [word]))


@intrinsic
def first_words(typingctx, out, e, seed, first, std, kn, wn, pending, k):
    """``out[e + j]`` = std × the first word's value of element ``first + e + j`` for j < LANES;
    the indices e + j whose word is rejected written to ``pending[k:]`` in order; returns k
    plus their count. ``out`` a C-contiguous float32 or float64 vector, e + LANES <= its
    length and k + LANES <= pending's (neither checked), ``kn`` int32 or int64, ``wn``
    float64, ``pending`` int64."""
    arrays = (out, kn, wn, pending)
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays):
        return None
    if out.dtype not in (types.float32, types.float64) or wn.dtype != types.float64:
        return None
    if kn.dtype not in (types.int32, types.int64) or pending.dtype != types.int64:
        return None
    i64 = types.int64
    sig = i64(out, i64, types.uint64, i64, types.float64, kn, wn, pending, i64)
    return sig, _first_words_ir
