"""Loss points: the runs of ratings whose loss sums the epoch kernels report.

Each block owns a contiguous range of points and each point is a run of whole batches inside one
block, so the kernels write one row of losses per point with no races, and the batches are the
same however a block is cut into points. Without recording there is one point per block. With
recording every batch is a point when an epoch has at most ``MAX_POINTS`` batches; otherwise
consecutive batches are summed, so an epoch has at most ``MAX_POINTS`` + S² points whatever the
batch size (at ``batch_size=1`` on 25M ratings too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_POINTS = 2000


def block_points(block_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One point per block: (point_bounds, block_points) as the epoch kernels take them."""
    n_blocks = block_offsets.shape[0] - 1
    return block_offsets, np.arange(n_blocks + 1, dtype=np.int64)


def batch_points(
    block_offsets: np.ndarray, batch_size: int, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Points of whole batches: every batch when the epoch has at most ``max_points``, else runs
    of ``ceil(n_batches / max_points)`` batches (a block's last run may be shorter).

    Returns ``point_bounds`` (int64, n_points + 1: point p is ratings ``bounds[p]:bounds[p+1]``)
    and ``block_points`` (int64, S² + 1: block b owns points ``block_points[b]:[b+1]``)."""
    offsets = np.asarray(block_offsets, dtype=np.int64)
    sizes = np.diff(offsets)
    n_batches = -(-sizes // batch_size)
    per_point = max(1, -(-int(n_batches.sum()) // max_points))
    span = per_point * batch_size  # ratings in a full point
    counts = -(-sizes // span)
    owned = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(counts, out=owned[1:])
    block_of = np.repeat(np.arange(len(sizes)), counts)
    rank = np.arange(owned[-1], dtype=np.int64) - owned[block_of]
    bounds = np.empty(owned[-1] + 1, dtype=np.int64)
    bounds[:-1] = offsets[block_of] + rank * span
    bounds[-1] = offsets[-1]
    return bounds, owned


def execution_order(block_points: np.ndarray, shift_order: np.ndarray, n_strata: int) -> np.ndarray:
    """The points in the order an epoch runs them: shifts in ``shift_order``, each shift's blocks
    (a, (a + t) mod S) by a, each block's points in order."""
    s = n_strata
    t = np.asarray(shift_order, dtype=np.int64)[:, None]
    a = np.arange(s, dtype=np.int64)[None, :]
    blocks = (a * s + (a + t) % s).ravel()
    lo, hi = block_points[blocks], block_points[blocks + 1]
    counts = hi - lo
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return starts + np.arange(counts.sum(), dtype=np.int64)


def points_frame(
    epoch: int,
    point_bounds: np.ndarray,
    order: np.ndarray,
    point_losses: np.ndarray,
    batch_size: int,
) -> pd.DataFrame:
    """One epoch's points, in execution order: the epoch, the index of the point's first batch in
    the epoch, its ratings and its three losses as means per rating."""
    n = np.diff(point_bounds)[order]
    batches = -(-n // batch_size)  # a point starts a batch; only a block's last can end short
    first = np.concatenate(([0], np.cumsum(batches)[:-1]))
    base = point_losses[order, 0]
    reg = point_losses[order, 1]
    per = np.maximum(n, 1).astype(np.float64)
    keep = n > 0
    return pd.DataFrame(
        {
            "epoch": np.full(int(keep.sum()), epoch, dtype=np.int64),
            "batch": first[keep].astype(np.int64),
            "n_ratings": n[keep].astype(np.int64),
            "base_loss": (base / per)[keep],
            "reg_loss": (reg / per)[keep],
            "total_loss": ((base + reg) / per)[keep],
        }
    )
