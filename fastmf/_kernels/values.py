"""Passes over rating values: the finite check, and sums with numpy's rounding, min and max,
block by block in parallel.

``np.sum(values, dtype=np.float64)`` of a float32 array casts it in buffers of 8192 values and
adds each buffer's pairwise sum (eight running sums up to 128 values, halves above) to a total
that starts at 0. ``numpy_sum`` is that formula, so μ summed here per block has the bits of the
blocks summed by numpy one call at a time (a store's blocks, read from disk, are), and
``tests/kernels/test_values.py`` holds it to numpy's on many lengths and spreads of values.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastmf._kernels.jit import JIT, sized_kernel

NUMPY_BUFFER = 8192  # numpy's default buffer: a cast reduction sums this many values at a time
_BLOCK = 128  # numpy's pairwise block: eight running sums up to this length


@njit(**JIT)
def _pairwise(values, lo, n):
    """numpy's pairwise sum of ``values[lo:lo + n]`` in float64."""
    if n < 8:
        res = 0.0
        for j in range(lo, lo + n):
            res += np.float64(values[j])
        return res
    if n <= _BLOCK:
        r0, r1 = np.float64(values[lo]), np.float64(values[lo + 1])
        r2, r3 = np.float64(values[lo + 2]), np.float64(values[lo + 3])
        r4, r5 = np.float64(values[lo + 4]), np.float64(values[lo + 5])
        r6, r7 = np.float64(values[lo + 6]), np.float64(values[lo + 7])
        stop = lo + n - n % 8
        for j in range(lo + 8, stop, 8):
            r0 += np.float64(values[j])
            r1 += np.float64(values[j + 1])
            r2 += np.float64(values[j + 2])
            r3 += np.float64(values[j + 3])
            r4 += np.float64(values[j + 4])
            r5 += np.float64(values[j + 5])
            r6 += np.float64(values[j + 6])
            r7 += np.float64(values[j + 7])
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for j in range(stop, lo + n):
            res += np.float64(values[j])
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(values, lo, half) + _pairwise(values, lo + half, n - half)


@njit(**JIT)
def numpy_sum(values, lo, hi):
    """``np.sum(values[lo:hi], dtype=np.float64)``, bit for bit, for float32 ``values``."""
    total = 0.0
    for start in range(lo, hi, NUMPY_BUFFER):
        total = total + _pairwise(values, start, min(NUMPY_BUFFER, hi - start))
    return total


@sized_kernel(**JIT)
def block_sums(values, value_bits, offsets):
    """Each block's ``numpy_sum`` of float32 ``values`` and its smallest and largest value, as
    ``value_bits`` (the values' bits as int32, all of them finite) order them: float64 sums,
    int32 keys (``ordered_keys``; an empty block's sum is 0 and its keys the int32 extremes),
    the blocks in parallel. Integer keys let the min and max vectorize."""
    n_blocks = offsets.shape[0] - 1
    sums = np.zeros(n_blocks)
    lows = np.full(n_blocks, np.iinfo(np.int32).max, dtype=np.int32)
    highs = np.full(n_blocks, np.iinfo(np.int32).min, dtype=np.int32)
    flip = np.int32(0x7FFFFFFF)
    for b in prange(n_blocks):
        lo, hi = offsets[b], offsets[b + 1]
        if hi > lo:
            sums[b] = numpy_sum(values, lo, hi)
            low = lows[b]
            high = highs[b]
            for j in range(lo, hi):
                x = value_bits[j]
                key = x ^ ((x >> 31) & flip)  # the float order, for finite values
                low = min(low, key)
                high = max(high, key)
            lows[b] = low
            highs[b] = high
    return sums, lows, highs


def ordered_keys(keys: np.ndarray) -> np.ndarray:
    """The float32 values of ``block_sums``' int32 keys (the map is its own inverse)."""
    keys = np.asarray(keys, dtype=np.int32)
    return (keys ^ ((keys >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)


@sized_kernel(**JIT)
def count_nonfinite(values):
    """How many of float ``values`` are NaN or infinite (x − x is not 0 for them alone), in
    parallel pieces."""
    n = values.shape[0]
    pieces = 64
    counts = np.zeros(pieces, dtype=np.int64)
    for c in prange(pieces):
        bad = 0
        for j in range(c * n // pieces, (c + 1) * n // pieces):
            x = values[j]
            bad += (x - x) != 0
        counts[c] = bad
    return counts.sum()
