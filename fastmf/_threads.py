"""Numba's thread count for one call: chosen from ``n_jobs``, set, and restored after."""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba


def threads_for(n_jobs: Any) -> int:
    """Threads for ``n_jobs``: -1 (or None) for all cores, -2 for all but one, else that many."""
    limit = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None or isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        return limit
    if n_jobs < 0:
        return max(1, limit + 1 + int(n_jobs))
    return max(1, min(limit, int(n_jobs)))


@contextmanager
def numba_threads(n: int) -> Iterator[int]:
    """Numba's thread count set to ``n`` inside the block, then restored; yields ``n``."""
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(before)
