"""A counter-based N(0, 1) draw, for the factors a fresh fit starts from.

Element e of a draw has a splitmix64 stream of its own, started from the splitmix64 hash of
``seed + e·γ`` (γ the golden-ratio increment), whose 64-bit outputs Marsaglia and Tsang's
ziggurat (128 layers; the layer from the low 7 bits, the value from the high 32, so the two are
independent) turns into a standard normal. An element's value is a function of the seed and its
index alone: the draw's bits never depend on how the elements are shared out to threads. The
kernel is compiled without fast-math flags, so the accept tests are IEEE's and
``tests/train/test_initial_draw.py``'s pure-Python twin gives the same bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

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


@sized_kernel(**NORMAL_JIT)
def normal_fill(out, seed, first, std, kn, wn, fn):
    """``out[e]`` = std × the standard normal of element ``first + e`` of the draw ``seed``
    (uint64), for every e in parallel (each element written by one thread, its value a
    function of the seed and its index alone)."""
    for e in prange(out.shape[0]):
        state = _mix(seed + np.uint64(first + e) * GAMMA)
        out[e] = _ziggurat(state, kn, wn, fn) * std


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
