"""Numba kernels of the serving side: top-k selection over score rows and ranking counts.

Legend: ``S`` a tile of scores (rows are users or query items, columns a run of candidates),
``bias`` a per-candidate term added to every row, ``k`` the list length, a "position" the index
of a candidate. The dot products themselves are computed by BLAS (``numpy.matmul``) one tile at a
time before these kernels run: a blocked GEMM reuses each item row from cache across many users,
which a per-user loop cannot, and a tile small enough to stay in cache is read back at once.

Every kernel here sees arrays and scalars only; inputs are checked in Python before a kernel runs,
and nothing raises inside ``prange``. Each parallel loop owns its output rows (no races).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastmf._kernels.jit import JIT


@njit(**JIT)
def _worse(s_a, i_a, s_b, i_b):
    """True when (score a, index a) ranks below (score b, index b): lower score, or on a tie the
    higher index (so ties go to the lower candidate position, as a stable sort would)."""
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@njit(**JIT)
def _sift_down(hs, hi, start, size):
    """Restore the heap property below ``start`` in the min-heap (hs, hi) of ``size`` entries,
    whose root is the worst entry. Mutates hs and hi in place."""
    pos = start
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(hs[right], hi[right], hs[child], hi[child]):
            child = right
        if _worse(hs[child], hi[child], hs[pos], hi[pos]):
            ts = hs[pos]
            ti = hi[pos]
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            hs[child] = ts
            hi[child] = ti
            pos = child
        else:
            break


# Candidates are scanned in blocks of this many: a branch-free (vectorized) test of whether any
# entry of the block beats the current k-th best comes first, and only blocks with such an entry
# are scanned one by one. After the first few blocks almost every block is skipped. The block
# length must be a compile-time constant: LLVM vectorizes the fixed-length test 5x better.
_BLOCK = 64


@njit(**JIT)
def _scan(row, bias, c0, c1, col0, hs, hi):
    """Offer entries c0..c1-1 of ``row + bias`` to the heap one by one (positions ``col0 + c``).

    The heap (hs, hi) keeps the k best seen so far with the worst at the root. Positions are
    offered in increasing order, so a newcomer that ties the root has the higher position and
    ranks below it: the strict ``>`` is the full comparison.
    """
    k = hs.shape[0]
    for c in range(c0, c1):
        s = row[c] + bias[c]
        if s > hs[0]:
            hs[0] = s
            hi[0] = col0 + c
            _sift_down(hs, hi, 0, k)


@njit(**JIT)
def _offer_row(row, bias, col0, hs, hi):
    """Offer every entry of ``row + bias`` (a tile starting at candidate position ``col0``) to
    the heap (hs, hi). Entries that are -inf or NaN are never taken. Mutates hs and hi only."""
    n = row.shape[0]
    n_full = n // _BLOCK
    for b in range(n_full):
        c0 = b * _BLOCK
        # The root only rises, so an entry not above it now is never taken later.
        thr = hs[0]
        above = False
        for j in range(_BLOCK):
            above |= row[c0 + j] + bias[c0 + j] > thr
        if above:
            _scan(row, bias, c0, c0 + _BLOCK, col0, hs, hi)
    _scan(row, bias, n_full * _BLOCK, n, col0, hs, hi)


@njit(**JIT)
def _heap_sort(hs, hi):
    """Turn the heap (worst at the root) into a list sorted best first; mutates hs and hi."""
    for end in range(hs.shape[0] - 1, 0, -1):
        ts = hs[0]
        ti = hi[0]
        hs[0] = hs[end]
        hi[0] = hi[end]
        hs[end] = ts
        hi[end] = ti
        _sift_down(hs, hi, 0, end)


@njit(**JIT)
def _tile_row(S, r, bias, col0, excl_pos, cursor, excl_end, hs, hi):
    """Row r of a tile: blank its excluded entries, then offer the rest to its heap."""
    w = S.shape[1]
    e = cursor[r]
    while e < excl_end[r] and excl_pos[e] < col0 + w:
        p = excl_pos[e] - col0
        if p >= 0:
            S[r, p] = -np.inf
        e += 1
    cursor[r] = e
    _offer_row(S[r], bias, col0, hs, hi)


@njit(parallel=True, **JIT)
def topk_tile(S, bias, col0, excl_pos, cursor, excl_end, heap_score, heap_pos):
    """Offer one tile of scores to the running top-k of each row, in parallel over rows.

    Parameters
    ----------
    S : ndarray of shape (m, w), float32 or float64, C-contiguous
        Dot products of m rows with the candidates at positions ``col0 .. col0 + w - 1``.
        Excluded entries are overwritten with -inf (mutated).
    bias : ndarray of shape (w,), same dtype
        Term added to every row (the candidates' item biases).
    col0 : int
        Candidate position of the tile's first column.
    excl_pos : ndarray of shape (nnz,), int32
        Excluded candidate positions, sorted within each row's range.
    cursor : ndarray of shape (m,), int64
        Row r's next unconsumed entry of ``excl_pos``; advanced past this tile (mutated).
    excl_end : ndarray of shape (m,), int64
        End of row r's range in ``excl_pos``.
    heap_score, heap_pos : ndarray of shape (m, k)
        Each row's running top k as a heap (worst at [r, 0]); start at -inf and -1 and call
        :func:`finish_rows` after the last tile. Mutated.

    Tiles must come in increasing ``col0`` (so ties go to the lower position). Row r of every
    array is touched by one thread only (no races).
    """
    for r in prange(S.shape[0]):
        _tile_row(S, r, bias, col0, excl_pos, cursor, excl_end, heap_score[r], heap_pos[r])


@njit(**JIT)
def topk_tile_serial(S, bias, col0, excl_pos, cursor, excl_end, heap_score, heap_pos):
    """Serial twin of :func:`topk_tile` (same row body); releases the GIL, so worker threads
    can each run it on their own rows."""
    for r in range(S.shape[0]):
        _tile_row(S, r, bias, col0, excl_pos, cursor, excl_end, heap_score[r], heap_pos[r])


@njit(**JIT)
def finish_rows(heap_score, heap_pos):
    """Sort each row's heap best first (padding -inf / -1 ends up last). Mutates both."""
    for r in range(heap_score.shape[0]):
        _heap_sort(heap_score[r], heap_pos[r])


@njit(**JIT)
def _ranking_row(rec, rel_items, rel_lo, rel_hi, n_relevant, k, discounts):
    """Hits and DCG of one recommended list ``rec`` (first k entries) against the sorted relevant
    items ``rel_items[rel_lo:rel_hi]``; ``n_relevant`` (which may count relevant items that can
    never be recommended) sets the ideal DCG. Returns (hits, dcg, idcg)."""
    hits = 0
    dcg = 0.0
    top = min(k, rec.shape[0])
    for t in range(top):
        x = rec[t]
        if x < 0:
            continue
        # Binary search in the sorted relevant items of this user.
        lo = rel_lo
        hi = rel_hi
        while lo < hi:
            mid = (lo + hi) >> 1
            if rel_items[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo < rel_hi and rel_items[lo] == x:
            hits += 1
            dcg += discounts[t]
    idcg = 0.0
    for t in range(min(k, n_relevant)):
        idcg += discounts[t]
    return hits, dcg, idcg


@njit(parallel=True, **JIT)
def ranking_counts(rec, rel_indptr, rel_items, n_relevant, k, hits, dcg, idcg):
    """Per-user hits, DCG and ideal DCG at k of recommended lists, in parallel over users.

    Parameters
    ----------
    rec : ndarray of shape (m, L), int64
        Recommended item codes of each user, best first; negative codes are padding.
    rel_indptr : ndarray of shape (m + 1,), int64
        CSR row pointers into ``rel_items``.
    rel_items : ndarray of shape (nnz,), int64
        Relevant item codes of each user, sorted within each user, no duplicates, non-negative.
    n_relevant : ndarray of shape (m,), int64
        Number of relevant items of each user (at least the CSR row length).
    k : int
        Cut-off.
    hits, dcg, idcg : ndarray of shape (m,)
        Written, one slot per user (each slot owned by one thread): hits in the top k,
        DCG with binary gains and ``1 / log2(rank + 1)`` discounts, and the ideal DCG.
    """
    m = rec.shape[0]
    discounts = np.empty(max(k, 1), dtype=np.float64)
    for t in range(discounts.shape[0]):
        discounts[t] = 1.0 / np.log2(t + 2.0)
    for u in prange(m):
        h, d, i = _ranking_row(
            rec[u], rel_items, rel_indptr[u], rel_indptr[u + 1], n_relevant[u], k, discounts
        )
        hits[u] = h
        dcg[u] = d
        idcg[u] = i
