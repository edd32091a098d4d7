"""Splitting a store into a train store and a test store, block by block, by the rules of
``fastmf.data.split``: a uniformly chosen set of ratings of the asked size, or a global time
cutoff; test ratings whose user or item has no training rating kept or dropped."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from fastmf.data.store.store import RatingStore


def split_store(
    store: RatingStore,
    train_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    *,
    test_size: float | int = 0.1,
    cutoff: int | str | None = None,
    random_state: int | None = None,
    unknown: str = "keep",
) -> tuple[RatingStore, RatingStore]:
    """Split ``store`` into two new stores without loading it whole.

    With ``cutoff`` None, ``test_size`` ratings (a fraction, rounded up, or a count) chosen
    uniformly at random (seeded by ``random_state``) go to the test store, as
    ``fastmf.data.split.train_test_split`` chooses them. With ``cutoff`` (an int timestamp or
    a date), ratings before it train and the others test, as ``time_split`` does; the store
    needs timestamps. ``unknown="drop"`` leaves out test ratings whose user or item has no
    training rating.
    """
    if unknown not in ("keep", "drop"):
        raise ValueError(f"unknown must be 'keep' or 'drop', not {unknown!r}")
    masks = (
        _time_masks(store, cutoff)
        if cutoff is not None
        else _random_masks(store, test_size, random_state)
    )
    known_u = np.zeros(store.n_users, dtype=bool)
    known_i = np.zeros(store.n_items, dtype=bool)
    for b, u, i, _ in store.iter_blocks():
        train = ~masks(b)
        known_u[u[train]] = True
        known_i[i[train]] = True
    drop = unknown == "drop"
    train = RatingStore.build(train_path, _frames(store, masks, False, None, None))
    test = RatingStore.build(
        test_path, _frames(store, masks, True, known_u if drop else None, known_i)
    )
    return train, test


def _random_masks(store: RatingStore, test_size: float | int, seed: int | None):
    """The test mask of each block: k ratings uniform over all k-subsets (each block's share
    drawn from the multivariate hypergeometric law, then its ratings chosen)."""
    n = store.n_ratings
    if isinstance(test_size, float) and 0.0 < test_size < 1.0:
        k = math.ceil(test_size * n)
    elif isinstance(test_size, (int, np.integer)) and 0 < test_size < n:
        k = int(test_size)
    else:
        raise ValueError(
            f"test_size={test_size!r} must be a fraction in (0, 1) or a count in 1..{n - 1}"
        )
    seq = np.random.SeedSequence(seed)
    sizes = np.diff(store.block_offsets)
    shares = np.random.default_rng(seq.spawn(1)[0]).multivariate_hypergeometric(sizes, k)
    seeds = seq.spawn(len(sizes))

    def mask(b: int) -> np.ndarray:
        out = np.zeros(int(sizes[b]), dtype=bool)
        rng = np.random.default_rng(seeds[b])
        out[rng.choice(int(sizes[b]), int(shares[b]), replace=False)] = True
        return out

    return mask


def _time_masks(store: RatingStore, cutoff: Any):
    if not store.has_timestamps:
        raise ValueError(f"a time split needs timestamps, and {store.path} holds none")
    if isinstance(cutoff, (int, np.integer)) and not isinstance(cutoff, bool):
        t_cut = int(cutoff)
    else:
        stamp = pd.Timestamp(cutoff)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        t_cut = int(np.floor(stamp.timestamp()))

    def mask(b: int) -> np.ndarray:
        return store.read_block_timestamps(b) >= t_cut

    return mask


def _frames(store, masks, test: bool, known_u, known_i) -> Iterator[pd.DataFrame]:
    """The kept ratings of each block as a DataFrame of raw ids (one block at a time)."""
    for b, u, i, v in store.iter_blocks():
        keep = masks(b) if test else ~masks(b)
        if known_u is not None:
            keep &= known_u[u] & known_i[i]
        data = {
            "user": store.user_map.ids[u[keep]],
            "item": store.item_map.ids[i[keep]],
            "rating": v[keep],
        }
        if store.has_timestamps:
            data["timestamp"] = store.read_block_timestamps(b)[keep]
        yield pd.DataFrame(data)
