"""Numba kernels that look raw integer ids up in an IdMap's table.

Legend: ``table`` maps ``id - low`` to a dense index (int32, -1 for ids not in the map) for the
ids ``low..high`` (int64); ``out`` receives one dense index per raw id. Each row is written by one
thread only, so there are no races, and the result never depends on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastmf._kernels.jit import JIT, sized_kernel

FRACTIONAL = -2  # in ``out``: a float id that is NaN, infinite or not a whole number

_TWO_63 = 9223372036854775808.0


@sized_kernel(**JIT)
def lookup_ints(values, table, low, high, out):
    """``out[r]`` = the dense index of the integer id ``values[r]``, -1 outside ``low..high``.

    ``values`` is any signed integer dtype or an unsigned one narrower than 64 bits, so every
    comparison with the int64 bounds is exact. Writes ``out`` only."""
    for r in prange(values.shape[0]):
        v = values[r]
        if v >= low and v <= high:
            out[r] = table[np.int64(v) - low]
        else:
            out[r] = -1


@sized_kernel(**JIT)
def lookup_floats(values, table, low, high, out):
    """Same as :func:`lookup_ints` for float64 ids: a whole number is the integer it holds, and
    ``out[r]`` is FRACTIONAL where ``values[r]`` is NaN, infinite or not whole. Writes ``out``."""
    for r in prange(values.shape[0]):
        v = values[r]
        if not np.isfinite(v) or v != np.floor(v):
            out[r] = FRACTIONAL
        elif v >= -_TWO_63 and v < _TWO_63:
            k = np.int64(v)
            out[r] = table[k - low] if k >= low and k <= high else -1
        else:
            out[r] = -1
