"""The block-stratified training schedule: S×S blocks and the seeded order of sub-epochs.

Users and items are each split into S strata balanced by rating count, and the model's rows are
numbered stratum by stratum, so the rows a block touches are contiguous in memory. Block (a, b)
holds the ratings of user stratum a and item stratum b, sorted by (user, item) and cut into a few
runs that are interleaved (``_kernels.sorting.STREAMS``), so consecutive ratings belong to different
users. A sub-epoch with shift t trains the S blocks (a, (a + t) mod S) at once: they share no user
and no item, so each runs alone on one thread and the result does not depend on the number of
threads. Each epoch visits the S shifts in an order drawn from the training's random generator.
The strata and each block's order are a function of the ratings alone (``fastmf.data.blocks``,
shared with the on-disk store); only the order of the shifts is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fastmf._kernels.sorting import key_counts
from fastmf.data.blocks import (
    Strata,
    balanced_strata,
    choose_n_strata,
    lay_out,
    lay_out_unordered,
)
from fastmf.data.coerce import to_ratings
from fastmf.data.ratings import Ratings

__all__ = [
    "BlockSchedule",
    "PreparedRatings",
    "Strata",
    "assign_blocks",
    "balanced_strata",
    "build_blocks",
    "choose_n_strata",
    "fit_ratings",
    "rating_counts",
    "strata_of",
]


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
    laid = lay_out(users, items, values, user_row, item_row, user_strata, item_strata)
    return schedule_of(laid, user_strata.n_strata, len(user_row), len(item_row), n_workers)


def schedule_of(
    laid: tuple[np.ndarray, ...], n_strata: int, n_users: int, n_items: int, n_workers: int,
    row_maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> BlockSchedule:  # fmt: skip
    """The schedule of a layout (``lay_out``'s rows, values and block offsets), dealt to
    ``n_workers`` threads. Every row of the layout is checked to lie below ``n_users`` or
    ``n_items``; given ``row_maps`` (the user and item rows ``lay_out`` relabelled dense
    indices by, so the layout holds only their values), the maps are checked instead."""
    out_u, out_i, out_v, offsets = laid
    a_off, a_blocks = assign_blocks(offsets, n_strata, n_workers)
    u_rows, i_rows = (out_u, out_i) if row_maps is None else row_maps
    return BlockSchedule(
        out_u, out_i, out_v, offsets, n_strata, a_off, a_blocks,
        _rows_below(u_rows, n_users, "user"), _rows_below(i_rows, n_items, "item"),
    )  # fmt: skip


Rows = tuple[np.ndarray, Strata, np.ndarray, Strata]  # user rows, user strata, item rows, strata


def strata_of(ratings: Ratings, counts: tuple[np.ndarray, np.ndarray] | None = None) -> Rows:
    """The model row of each user and item index and the strata (``balanced_strata`` of the
    rating counts, ``counts`` when given; S from ``choose_n_strata``): a function of the set
    of ratings alone."""
    u_counts, i_counts = rating_counts(ratings) if counts is None else counts
    s = choose_n_strata(len(ratings), ratings.n_users, ratings.n_items)
    u_pos, u_strata = balanced_strata(u_counts, s)
    i_pos, i_strata = balanced_strata(i_counts, s)
    return u_pos, u_strata, i_pos, i_strata


def rating_counts(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """The ratings of each user and of each item index (int64), counted in parallel, or the
    counts a ``PreparedRatings`` holds already."""
    if isinstance(ratings, PreparedRatings):
        return ratings.counts
    return key_counts(ratings.users, ratings.n_users), key_counts(ratings.items, ratings.n_items)


class PreparedRatings(Ratings):
    """Ratings in the order they were given, no (user, item) pair twice, with their counts,
    rows, strata and block layout (``counts``, ``rows``, ``laid``: what ``rating_counts``,
    ``strata_of`` and ``lay_out`` give)."""

    def __init__(
        self,
        ratings: Ratings,
        counts: tuple[np.ndarray, np.ndarray],
        rows: Rows,
        laid: tuple[np.ndarray, ...],
    ) -> None:
        r = ratings
        super().__init__(r.users, r.items, r.values, r.user_map, r.item_map, None)
        self.counts = counts
        self.rows = rows
        self.laid = laid


def fit_ratings(X: Any, y: Any, duplicates: str, holds_out: bool) -> Ratings:
    """The training ratings of ``fit``. Unless a share is held out for validation
    (``holds_out``: it is drawn over the ratings in (user, item) order), a DataFrame's or an
    array's ratings are laid out in blocks straight from their given order, checked for
    repeated pairs on the way (``PreparedRatings``): one scatter and a sort of each block in
    cache instead of sorting all ratings first. With repeated pairs, or ``holds_out``, the
    ratings of ``to_ratings`` (in (user, item) order, duplicates resolved by ``duplicates``)."""
    if holds_out or isinstance(X, Ratings) or hasattr(X, "tocoo"):
        return to_ratings(X, y, duplicates=duplicates)
    raw = to_ratings(X, y, duplicates=duplicates, ordered=False)
    counted = raw.take_counts()  # counted with the id codes, or now
    raw.users, raw.items = _read_only(raw.users), _read_only(raw.items)
    counts = rating_counts(raw) if counted is None else counted
    rows = strata_of(raw, counts)
    u_pos, u_strata, i_pos, i_strata = rows
    out_u, out_i, out_v, offsets, repeats = lay_out_unordered(
        raw.users, raw.items, raw.values, u_pos, i_pos, u_strata, i_strata
    )
    if repeats:
        del out_u, out_i, out_v
        return raw._resolve_duplicates(duplicates, ("user", "item"))
    return PreparedRatings(raw, counts, rows, (out_u, out_i, out_v, offsets))


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


@dataclass
class ShiftPiece:
    """One sub-epoch as a run of its own: the kernels' point and assignment arrays for the S
    blocks of shift ``shift`` laid end to end (local block a is block a*S + (a + shift) mod S),
    and the epoch's points it computes (``points``, in local order)."""

    shift: int
    blocks: np.ndarray  # int64 (S,): the global block of each local block
    bounds: np.ndarray  # int64: local point bounds, from 0 to the shift's ratings
    owned: np.ndarray  # int64 (S + 1,): local points of each local block
    assign_offsets: np.ndarray  # int64 (1, n_workers + 1)
    assign_blocks: np.ndarray  # int32 (1, S): local blocks in worker order
    points: np.ndarray  # int64: the epoch's point of each local point


def shift_piece(schedule: Any, shift: int, bounds: np.ndarray, owned: np.ndarray) -> ShiftPiece:
    """The sub-epoch of shift ``shift`` of an epoch cut into points ``bounds``/``owned``
    (``fastmf.train.batch_points``), for a kernel run over that shift's blocks alone."""
    s = schedule.n_strata
    offsets = schedule.block_offsets
    glob = np.array([a * s + (a + shift) % s for a in range(s)], dtype=np.int64)
    sizes = offsets[glob + 1] - offsets[glob]
    starts = np.zeros(s + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    counts = owned[glob + 1] - owned[glob]
    local_owned = np.zeros(s + 1, dtype=np.int64)
    np.cumsum(counts, out=local_owned[1:])
    points = np.concatenate([np.arange(owned[b], owned[b + 1]) for b in glob]).astype(np.int64)
    local_bounds = np.empty(points.shape[0] + 1, dtype=np.int64)
    block_of_point = np.repeat(np.arange(s), counts)
    local_bounds[:-1] = bounds[points] - offsets[glob[block_of_point]] + starts[block_of_point]
    local_bounds[-1] = starts[-1]
    return ShiftPiece(
        shift,
        glob,
        local_bounds,
        local_owned,
        np.ascontiguousarray(schedule.assign_offsets[shift : shift + 1]),
        (schedule.assign_blocks[shift : shift + 1] // s).astype(np.int32),
        points,
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: the kernels then compile one signature whether the ids were
    their own codes (the caller's array, often read-only) or new codes."""
    view = a.view()
    view.flags.writeable = False
    return view
