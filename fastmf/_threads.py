"""Numba's thread count for one call, and the lock that keeps two threads out of parallel kernels.

Numba's thread count is per Python thread: it is chosen from ``n_jobs``, set for a block, and
restored after. Numba's default threading layer (workqueue, used where neither OpenMP nor TBB is
installed) aborts the process when two Python threads run ``parallel=True`` kernels at once, so
every Python call of such a kernel holds ``KERNEL_LOCK``: kernels from several threads run one
after the other, never together, whatever the layer.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba

KERNEL_LOCK = threading.RLock()
"""Held around every Python call of a ``parallel=True`` kernel (re-entrant)."""


def threads_for(n_jobs: Any) -> int:
    """Threads for ``n_jobs``: -1 (or None) for all cores, -2 for all but one, else that many."""
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if n_jobs is None or isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        return limit
    if n_jobs < 0:
        return max(1, limit + 1 + int(n_jobs))
    return max(1, min(limit, int(n_jobs)))


def current_threads() -> int:
    """The threads Numba's parallel kernels run on now, from this Python thread."""
    return int(numba.get_num_threads())


@contextmanager
def numba_threads(n: int) -> Iterator[int]:
    """Numba's thread count set to ``n`` inside the block, then restored; yields ``n``."""
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(before)
