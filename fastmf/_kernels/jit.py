"""One place for Numba's compile options, shared by every kernel module.

``FASTMATH`` is a chosen set of LLVM flags rather than ``True``: leaving out ``nnan`` and ``ninf``
keeps ``np.isfinite`` checks working, and leaving out ``reassoc`` keeps the order of every sum as
written in the source, so a kernel gives the same bits whether it was just compiled or loaded
from the cache.
"""

from __future__ import annotations

FASTMATH = {"nsz", "arcp", "contract", "afn"}

JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH}

# For small helpers called from inside a kernel's hot loop: inlined in Numba's IR, so the call
# costs nothing (LLVM does not always inline a separately compiled callee).
JIT_INLINE = {**JIT, "inline": "always"}
