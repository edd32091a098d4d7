"""The block-stratified training schedule: S×S blocks and the seeded order of sub-epochs.

Users and items are each split into S strata balanced by rating count, and the model's rows are
numbered stratum by stratum, so the rows a block touches are contiguous in memory. Block (a, b)
holds the ratings of user stratum a and item stratum b, sorted by (user, item) and cut into a few
runs that are interleaved (``_kernels.sorting.STREAMS``), so consecutive ratings belong to different
users. A sub-epoch with shift t trains the S blocks (a, (a + t) mod S) at once: they share no user
and no item, so each runs alone on one thread and the result does not depend on the number of
threads. Each epoch visits the S shifts in an order drawn from the training's random generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fastmf._kernels import sorting as sk
from fastmf._threads import KERNEL_LOCK


def choose_n_strata(n_ratings: int, n_users: int, n_items: int) -> int:
    """S from the data's size alone (never from the thread count, so models do not depend on it)."""
    if n_ratings >= 1_000_000:
        s = 32
    elif n_ratings >= 100_000:
        s = 16
    elif n_ratings >= 10_000:
        s = 8
    else:
        s = 4
    return max(1, min(s, n_users, n_items))


@dataclass
class Strata:
    """The split of rows into strata: rows of stratum s are ``starts[s]:starts[s+1]``."""

    starts: np.ndarray  # int64 (S + 1,)

    @property
    def n_strata(self) -> int:
        return int(self.starts.shape[0] - 1)

    def of_rows(self, n_rows: int) -> np.ndarray:
        """The stratum of each row, int32."""
        return (np.searchsorted(self.starts, np.arange(n_rows), side="right") - 1).astype(np.int32)


def balanced_strata(
    counts: np.ndarray, n_strata: int, rng: np.random.Generator
) -> tuple[np.ndarray, Strata]:
    """Assign rows to strata with about equal rating counts.

    Rows are dealt to strata in snake order from the most rated down (ties broken at random).
    Returns ``position`` (the new row number of each old row, int32) and the strata of new rows.
    """
    n = counts.shape[0]
    tie = rng.random(n)
    ranked = np.lexsort((tie, -counts))
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = np.arange(n)
    lap, slot = np.divmod(rank, n_strata)
    stratum = np.where(lap % 2 == 0, slot, n_strata - 1 - slot)
    # new numbering: stratum-major, and inside a stratum by old row number
    order = np.lexsort((np.arange(n), stratum))
    position = np.empty(n, dtype=np.int32)
    position[order] = np.arange(n, dtype=np.int32)
    starts = np.zeros(n_strata + 1, dtype=np.int64)
    np.cumsum(np.bincount(stratum, minlength=n_strata), out=starts[1:])
    return position, Strata(starts)


@dataclass
class BlockSchedule:
    """Training ratings laid out block by block, and the work of each thread in each sub-epoch."""

    users: np.ndarray  # int32, model rows
    items: np.ndarray  # int32, model rows
    values: np.ndarray  # float32
    block_offsets: np.ndarray  # int64 (S*S + 1,)
    n_strata: int
    assign_offsets: np.ndarray  # int64 (S, n_workers + 1): per shift, each worker's slice
    assign_blocks: np.ndarray  # int32 (S, S): per shift, the blocks in worker order
    user_rows_below: int = 0  # every user row is below this (checked once, when built)
    item_rows_below: int = 0  # every item row is below this

    @property
    def n_workers(self) -> int:
        return int(self.assign_offsets.shape[1] - 1)

    def with_workers(self, n_workers: int) -> BlockSchedule:
        """The same blocks dealt to ``n_workers`` threads."""
        if n_workers == self.n_workers:
            return self
        offsets, blocks = assign_blocks(self.block_offsets, self.n_strata, n_workers)
        return replace(self, assign_offsets=offsets, assign_blocks=blocks)


def build_blocks(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    user_row: np.ndarray,
    item_row: np.ndarray,
    user_strata: Strata,
    item_strata: Strata,
    n_workers: int,
) -> BlockSchedule:
    """Lay out ratings in blocks of model rows and deal each sub-epoch to threads.

    ``users``/``items`` are container indices and ``user_row``/``item_row`` the model row of each
    (see ``_kernels.sorting.block_layout``)."""
    s = user_strata.n_strata
    n = users.shape[0]  # numpy's buffers (huge pages: fewer page faults than Numba's)
    out_u, out_i, out_v = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, values.dtype)
    with KERNEL_LOCK:
        offsets = sk.block_layout_into(
            users, items, values, user_row, item_row,
            user_strata.of_rows(len(user_row)), item_strata.of_rows(len(item_row)), s,
            out_u, out_i, out_v,
        )  # fmt: skip
    a_off, a_blocks = assign_blocks(offsets, s, n_workers)
    return BlockSchedule(
        out_u, out_i, out_v, offsets, s, a_off, a_blocks,
        _rows_below(out_u, len(user_row), "user"), _rows_below(out_i, len(item_row), "item"),
    )  # fmt: skip


def _rows_below(rows: np.ndarray, n_rows: int, side: str) -> int:
    """``n_rows``, once every row of the layout is checked to lie in [0, n_rows)."""
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= n_rows):
        raise ValueError(f"the block layout holds {side} rows outside 0..{n_rows - 1}")
    return n_rows


def assign_blocks(
    block_offsets: np.ndarray, n_strata: int, n_workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deal the S blocks of each shift to workers, longest first to the least loaded worker."""
    sizes = np.diff(block_offsets)
    s = n_strata
    offsets = np.zeros((s, n_workers + 1), dtype=np.int64)
    blocks = np.zeros((s, s), dtype=np.int32)
    for t in range(s):
        shift_blocks = np.array([a * s + (a + t) % s for a in range(s)], dtype=np.int64)
        by_size = shift_blocks[np.argsort(-sizes[shift_blocks], kind="stable")]
        load = np.zeros(n_workers, dtype=np.int64)
        per_worker: list[list[int]] = [[] for _ in range(n_workers)]
        for b in by_size:
            w = int(np.argmin(load))
            per_worker[w].append(int(b))
            load[w] += sizes[b]
        pos = 0
        for w in range(n_workers):
            offsets[t, w] = pos
            blocks[t, pos : pos + len(per_worker[w])] = per_worker[w]
            pos += len(per_worker[w])
        offsets[t, n_workers] = pos
    return offsets, blocks
