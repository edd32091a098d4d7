"""The chunked, tiled top-k of scores ``p . q + bias``, in bounded memory.

Many rows are served in chunks, and each chunk in tiles of candidates: BLAS computes one tile of
dot products into a small buffer, then a Numba kernel offers it to each row's running top k (a
heap: partial selection, no sort), so memory never grows with rows x candidates.

Parallelism: with more than one chunk, ``n_jobs`` worker threads each take whole chunks (BLAS
limited to one thread meanwhile, through threadpoolctl) and run GEMM and selection on their own
buffer and their own output rows; the kernel releases the GIL. Alternating a multi-threaded GEMM
with a parallel Numba loop was twice as slow: each side's idle threads spin while the other works.
Without threadpoolctl, or with one chunk, the tiles go through multi-threaded BLAS and the
``prange`` kernel instead.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from fastmf._kernels import ranking as rk
from fastmf._threads import KERNEL_LOCK, numba_threads, threads_for

__all__ = ["exclusion_positions", "rows_sorted", "serving_threads", "topk_chunked"]

# Scores are computed in tiles of (up to) TILE_ROWS rows x TILE_BYTES / (rows * itemsize)
# candidates: 256 x 2048 float32 (2 MB) stays in a core's L2 cache between BLAS writing it and
# the selection kernel reading it, and keeps BLAS near its peak (measured on ML-25M shapes).
TILE_ROWS = 256
TILE_BYTES = 2 * 2**20
BLOCK_MIN = 256
"""The fewest candidates in a tile."""

try:  # keeps BLAS to one thread while worker threads each run their own GEMM
    import threadpoolctl  # noqa: F401

    HAS_THREADPOOLCTL = True
except ImportError:  # pragma: no cover - then the single-threaded-chunk path is used
    HAS_THREADPOOLCTL = False


def serving_threads(model: Any):
    """Run with the model's ``n_jobs`` Numba threads, restored after; yields that number."""
    return numba_threads(threads_for(getattr(model, "n_jobs", None)))


def topk_chunked(
    P: np.ndarray,
    Q: np.ndarray,
    item_bias: np.ndarray,
    cand: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    excl_items: np.ndarray,
    width: int,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``width`` candidate positions and partial scores ``p . q + bias`` of every row of P.

    ``cand`` holds the item indices to rank (a position is an index into it); row r excludes
    the item indices ``excl_items[start[r]:end[r]]``. Returns (positions int32, scores), both
    (len(P), width), padded with -1 and -inf. Memory: the outputs plus one tile per thread.
    """
    dtype = Q.dtype
    n_items = Q.shape[0]
    n_cand = cand.shape[0]
    all_items = n_cand == n_items and bool((cand == np.arange(n_items)).all())
    Qc = Q if all_items else np.ascontiguousarray(Q[cand])
    bias_c = np.ascontiguousarray(item_bias if all_items else item_bias[cand], dtype=dtype)
    P = np.ascontiguousarray(P, dtype=dtype)
    m = P.shape[0]
    excl_pos, start, end = exclusion_positions(
        cand, all_items, n_items, np.asarray(start), np.asarray(end), excl_items
    )
    heap_score = np.full((m, width), -np.inf, dtype=dtype)
    heap_pos = np.full((m, width), -1, dtype=np.int32)
    cursor = start.copy()
    rows = min(TILE_ROWS, m)
    cols = int(min(n_cand, max(BLOCK_MIN, TILE_BYTES // (rows * dtype.itemsize))))
    chunks = [(s, min(s + rows, m)) for s in range(0, m, rows)]

    def run(s: int, e: int, flat: np.ndarray, kernel: Any) -> None:
        for c0 in range(0, n_cand, cols):
            c1 = min(c0 + cols, n_cand)
            S = flat[: (e - s) * (c1 - c0)].reshape(e - s, c1 - c0)
            np.matmul(P[s:e], Qc[c0:c1].T, out=S)
            kernel(
                S, bias_c[c0:c1], c0, excl_pos, cursor[s:e], end[s:e], heap_score[s:e],
                heap_pos[s:e],
            )  # fmt: skip
        rk.finish_rows(heap_score[s:e], heap_pos[s:e])

    if len(chunks) == 1 or n_threads == 1 or not HAS_THREADPOOLCTL:
        flat = np.empty(rows * cols, dtype=dtype)
        kernel = rk.topk_tile if n_threads > 1 else rk.topk_tile_serial
        with KERNEL_LOCK:  # a parallel kernel (the pool below runs serial ones)
            for s, e in chunks:
                run(s, e, flat, kernel)
        return heap_pos, heap_score

    from threadpoolctl import threadpool_limits

    next_chunk = itertools.count()  # next() on it is atomic under the GIL
    n_workers = min(n_threads, len(chunks))

    def work() -> None:
        flat = np.empty(rows * cols, dtype=dtype)
        while (c := next(next_chunk)) < len(chunks):
            run(*chunks[c], flat, rk.topk_tile_serial)

    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=n_workers) as pool,
    ):
        for f in [pool.submit(work) for _ in range(n_workers)]:
            f.result()
    return heap_pos, heap_score


def exclusion_positions(
    cand: np.ndarray,
    all_items: bool,
    n_items: int,
    start: np.ndarray,
    end: np.ndarray,
    excl_items: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Excluded candidate positions per row, sorted within each row, as (positions, start, end).

    The kernels consume each row's exclusions in increasing position as tiles advance. The
    model's seen items are sorted already and kept as they are (after a check); otherwise they
    are mapped to positions, dropped when not candidates, and sorted.
    """
    start = np.ascontiguousarray(start, dtype=np.int64)
    end = np.ascontiguousarray(end, dtype=np.int64)
    excl_items = np.ascontiguousarray(excl_items, dtype=np.int32)
    if all_items and rows_sorted(excl_items, start, end):
        return excl_items, start, end
    lengths = end - start
    owner = np.repeat(np.arange(start.shape[0], dtype=np.int64), lengths)
    flat = (
        np.concatenate([excl_items[a:b] for a, b in zip(start, end, strict=True)])
        if owner.size
        else (np.zeros(0, np.int32))
    )
    if all_items:
        pos = flat.astype(np.int64)
    else:
        cand_pos = np.full(n_items, -1, dtype=np.int64)
        cand_pos[cand] = np.arange(cand.shape[0])
        pos = cand_pos[flat]
    keep = pos >= 0
    owner, pos = owner[keep], pos[keep]
    order = np.lexsort((pos, owner))
    counts = np.bincount(owner, minlength=start.shape[0])
    new_end = np.cumsum(counts).astype(np.int64)
    return pos[order].astype(np.int32), new_end - counts, new_end


def rows_sorted(items: np.ndarray, start: np.ndarray, end: np.ndarray) -> bool:
    """Whether items[start[r]:end[r]] is non-decreasing for every row r (vectorized)."""
    live = end - start >= 2
    if not live.any():
        return True
    lo, hi = int(start[live].min()), int(end[live].max())
    span = items[lo:hi]
    drops = np.flatnonzero(span[1:] < span[:-1]) + lo + 1  # items[d] < items[d - 1]
    if drops.shape[0] == 0:
        return True
    # A drop at d is harmless unless some row holds both d - 1 and d: start < d < end.
    order = np.argsort(start[live], kind="stable")
    starts = start[live][order]
    reach = np.maximum.accumulate(end[live][order])  # farthest end among rows starting so far
    k = np.searchsorted(starts, drops, side="left")  # rows with start < d are [0, k)
    inside = (k > 0) & (reach[np.maximum(k - 1, 0)] > drops)
    return not bool(inside.any())
