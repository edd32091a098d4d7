"""The cluster's share of the schedule: which worker owns which user strata, each stratum's slice
of the model, and what moves between workers in a sub-epoch. Plain numpy, no Dask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

USER_STATE = ("user_factors_", "user_bias_", "bu_s1", "bu_s2", "P_s1", "P_s2", "u_steps")
ITEM_STATE = ("item_factors_", "item_bias_", "bi_s1", "bi_s2", "Q_s1", "Q_s2", "i_steps")


@dataclass
class Plan:
    """The layout a cluster fit trains: strata, blocks, loss points and the owner of each user
    stratum (its factors, biases and optimizer state stay on that worker)."""

    n_strata: int
    user_starts: np.ndarray  # int64 (S + 1,)
    item_starts: np.ndarray  # int64 (S + 1,)
    block_offsets: np.ndarray  # int64 (S*S + 1,)
    point_bounds: np.ndarray  # int64, as the epoch kernels take them
    block_points: np.ndarray  # int64 (S*S + 1,)
    owners: list[str]  # worker address of each user stratum

    def block(self, a: int, c: int) -> int:
        return a * self.n_strata + c

    def local_bounds(self, b: int) -> np.ndarray:
        """Block b's loss points as ratings of the block alone."""
        lo, hi = self.block_points[b], self.block_points[b + 1]
        return self.point_bounds[lo : hi + 1] - self.block_offsets[b]

    def strata_of(self, worker: str) -> list[int]:
        return [a for a, w in enumerate(self.owners) if w == worker]

    def workers(self) -> list[str]:
        return sorted(set(self.owners))


def deal_strata(block_offsets: np.ndarray, n_strata: int, workers: list[str]) -> list[str]:
    """Each user stratum's worker: strata by rating count, most first, each to the worker with
    the fewest ratings so far (ties to the first). Only speed depends on it, never the model."""
    if not workers:
        raise ValueError("no worker to train on")
    sizes = np.diff(block_offsets).reshape(n_strata, n_strata).sum(axis=1)
    load = np.zeros(len(workers), dtype=np.int64)
    owners = [""] * n_strata
    for a in np.argsort(-sizes, kind="stable"):
        w = int(np.argmin(load))
        owners[int(a)] = workers[w]
        load[w] += sizes[a]
    return owners


def side_arrays(model, optimizer: dict, names: tuple[str, ...]) -> list[np.ndarray]:
    """The model's arrays of one side (factors, biases, optimizer state), in ``names`` order."""
    return [getattr(model, n) if n.endswith("_") else optimizer[n] for n in names]


def stratum_slice(arrays: list[np.ndarray], lo: int, hi: int) -> tuple[np.ndarray, ...]:
    """Rows lo..hi of every array as fresh contiguous copies (an empty optimizer array, as the
    optimizer keeps none, stays empty)."""
    return tuple(np.ascontiguousarray(x[lo:hi]) if x.shape[0] else x.copy() for x in arrays)


def put_stratum(arrays: list[np.ndarray], lo: int, hi: int, parts: tuple) -> None:
    """Write a stratum's trained rows back into the model's arrays."""
    for x, part in zip(arrays, parts, strict=True):
        if x.shape[0]:
            x[lo:hi] = part


def moved_bytes(plan: Plan, item_bytes: np.ndarray, t_from: int, t_to: int) -> int:
    """Bytes of item strata that change worker between shifts t_from and t_to: stratum c is
    trained with user stratum (c - t) mod S."""
    s = plan.n_strata
    total = 0
    for c in range(s):
        if plan.owners[(c - t_from) % s] != plan.owners[(c - t_to) % s]:
            total += int(item_bytes[c])
    return total
