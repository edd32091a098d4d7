"""The block layout of ratings, as a function of the ratings alone: strata, the one builder of a
block's order, and the sums over blocks (μ and damped biases) in one fixed order.

Users and items are each split into S strata balanced by rating count (ties broken by index,
which is the sorted order of the raw ids), and the model's rows are numbered stratum by stratum,
inside a stratum by index. Block (a, c) holds the ratings of user stratum a and item stratum c,
sorted by (user row, item row) and interleaved in runs (``_kernels.sorting.block_layout``). The
in-memory fit lays out all blocks in one call; the on-disk store lays out each block alone with
the same kernel. Sums over the ratings go block by block, in block order, each block summed on
its own, so a fit from memory and a fit from a store get the same bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from fastmf._kernels import sorting as sk
from fastmf._kernels import values as value_kernels
from fastmf._kernels.jit import SERIAL_BELOW
from fastmf._threads import KERNEL_LOCK

Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # users, items (model rows), values


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
        if n_rows == int(self.starts[-1]):  # every row in a stratum: each stratum's run
            return np.repeat(np.arange(self.n_strata, dtype=np.int32), np.diff(self.starts))
        return (np.searchsorted(self.starts, np.arange(n_rows), side="right") - 1).astype(np.int32)


def balanced_strata(counts: np.ndarray, n_strata: int) -> tuple[np.ndarray, Strata]:
    """Assign rows to strata with about equal rating counts.

    Rows are dealt to strata in snake order from the most rated down, ties broken by row (the
    sorted order of the raw ids), so the strata depend on the ratings alone. Returns
    ``position`` (the new row number of each old row, int32) and the strata of new rows.
    """
    n = counts.shape[0]
    negated = -np.asarray(counts, dtype=np.int64)
    if n and int(negated.min()) > -(1 << 15):  # small counts: numpy's radix sort of int16
        negated = negated.astype(np.int16)
    ranked = np.argsort(negated, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = np.arange(n)
    lap, slot = np.divmod(rank, n_strata)
    stratum = np.where(lap % 2 == 0, slot, n_strata - 1 - slot)
    # new numbering: stratum-major, and inside a stratum by old row number (a stable sort of
    # small integers: numpy's radix sort)
    order = np.argsort(stratum.astype(np.int16 if n_strata < 1 << 15 else np.int64), kind="stable")
    position = np.empty(n, dtype=np.int32)
    position[order] = np.arange(n, dtype=np.int32)
    starts = np.zeros(n_strata + 1, dtype=np.int64)
    np.cumsum(np.bincount(stratum, minlength=n_strata), out=starts[1:])
    return position, Strata(starts)


def lay_out(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    user_row: np.ndarray,
    item_row: np.ndarray,
    user_strata: Strata,
    item_strata: Strata,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every block's ratings in training order: (user rows, item rows, values, block offsets).

    ``users``/``items`` are indices relabelled by ``user_row``/``item_row`` into model rows;
    ``values`` may be of any dtype (the store passes rating numbers to get the permutation).
    The one builder of the layout: the fit from memory and the store both call it."""
    n = users.shape[0]  # numpy's buffers (huge pages: fewer page faults than Numba's)
    out_u, out_i, out_v = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, values.dtype)
    with KERNEL_LOCK:
        offsets = sk.block_layout_into(
            users, items, values, user_row, item_row,
            user_strata.of_rows(len(user_row)), item_strata.of_rows(len(item_row)),
            user_strata.n_strata, out_u, out_i, out_v,
        )  # fmt: skip
    return out_u, out_i, out_v, offsets


def lay_out_unordered(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    user_row: np.ndarray,
    item_row: np.ndarray,
    user_strata: Strata,
    item_strata: Strata,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """``lay_out`` for ratings in any order, and how many rows repeat a (user, item) pair.

    One scatter by block, then each block sorted in cache: with no pair repeated, the same
    layout as ``lay_out`` of the ratings in (user, item) order; else not (resolve the
    duplicates and call ``lay_out``)."""
    n = users.shape[0]
    out_u, out_i, out_v = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, values.dtype)
    with KERNEL_LOCK:
        offsets, repeats = sk.unordered_layout_into(
            users, items, values, user_row, item_row,
            user_strata.of_rows(len(user_row)), item_strata.of_rows(len(item_row)),
            user_strata.starts, item_strata.starts, out_u, out_i, out_v,
        )  # fmt: skip
    return out_u, out_i, out_v, offsets, repeats


def lay_out_block(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """The training order of one block's distinct ratings: the permutation of them that
    ``lay_out`` gives the block (users/items are rows local to the block's strata)."""
    one_u, one_i = Strata(np.array([0, n_users])), Strata(np.array([0, n_items]))
    ident_u = np.arange(n_users, dtype=np.int32)
    ident_i = np.arange(n_items, dtype=np.int32)
    rank = np.arange(users.shape[0], dtype=np.int64)
    return lay_out(users, items, rank, ident_u, ident_i, one_u, one_i)[2]


def slices(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, offsets: np.ndarray
) -> Iterator[Block]:
    """The blocks of a laid-out array triple, in block order (views, no copies)."""
    for b in range(offsets.shape[0] - 1):
        lo, hi = int(offsets[b]), int(offsets[b + 1])
        yield users[lo:hi], items[lo:hi], values[lo:hi]


def block_mean(blocks: Iterable[Block], n_ratings: int) -> float:
    """μ: each block's ratings summed in float64 on its own, the sums added in block order."""
    total = 0.0
    for _, _, values in blocks:
        total += float(np.sum(values, dtype=np.float64))
    return total / n_ratings


def layout_mean_and_scale(
    values: np.ndarray, offsets: np.ndarray
) -> tuple[float, tuple[float, float]]:
    """μ of laid-out float32 ratings, summed as ``block_mean`` sums the blocks (the same bits:
    ``_kernels.values.numpy_sum`` is numpy's sum), and their smallest and largest rating: one
    parallel pass (``block_mean`` and numpy's min and max under ``SERIAL_BELOW`` ratings, with
    the same bits). ``values`` holds at least one rating."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if len(values) < SERIAL_BELOW:
        mean = block_mean(slices(values, values, values, offsets), len(values))
        return mean, (float(values.min()), float(values.max()))
    with KERNEL_LOCK:
        sums, lows, highs = value_kernels.block_sums(values, values.view(np.int32), offsets)
    total = 0.0
    for s in sums.tolist():  # in block order, as block_mean adds them
        total += s
    low, high = value_kernels.ordered_keys(np.array([lows.min(), highs.max()]))
    return total / len(values), (float(low), float(high))


def block_counts(blocks: Iterable[Block], n_users: int, n_items: int) -> tuple[np.ndarray, ...]:
    """Ratings per user row and per item row (int64)."""
    n_u = np.zeros(n_users, dtype=np.int64)
    n_i = np.zeros(n_items, dtype=np.int64)
    for users, items, _ in blocks:
        n_u += np.bincount(users, minlength=n_users)
        n_i += np.bincount(items, minlength=n_items)
    return n_u, n_i


def item_deviation_sums(blocks: Iterable[Block], mu: float, n_items: int) -> np.ndarray:
    """Σ (r − μ) per item row, block by block in block order."""
    acc = np.zeros(n_items)
    for _, items, values in blocks:
        acc += np.bincount(items, values.astype(np.float64) - mu, minlength=n_items)
    return acc


def user_residual_sums(
    blocks: Iterable[Block], mu: float, b_i: np.ndarray, n_users: int
) -> np.ndarray:
    """Σ (r − μ − b_i) per user row, block by block in block order."""
    acc = np.zeros(n_users)
    for users, items, values in blocks:
        acc += np.bincount(users, values.astype(np.float64) - mu - b_i[items], minlength=n_users)
    return acc


def damped_fixed_biases(
    passes: Iterable[Iterable[Block]], mu: float, damping: float, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """One sweep of damped biases in model rows: b_i = Σ(r − μ)/(n_i + damping), then
    b_u = Σ(r − μ − b_i)/(n_u + damping). ``passes`` yields three block iterables in turn (the
    store reads its blocks once for each), each over the blocks in block order."""
    first, second, third = passes
    n_u, n_i = block_counts(first, n_users, n_items)
    b_i = item_deviation_sums(second, mu, n_items) / (n_i + damping)
    b_u = user_residual_sums(third, mu, b_i, n_users) / (n_u + damping)
    return b_u, b_i
