"""Training, predicting and validating from a ``RatingStore``, block by block from disk.

The model starts as ``train.state.initialize`` starts it (the same random draws, μ and biases
summed the same way) and each epoch runs sub-epoch by sub-epoch: the S blocks of one shift are
read into memory while the previous shift trains, so memory is the model plus two shifts of
ratings, and the model is bit for bit the one ``fit`` trains on the same ratings in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fastmf._kernels import sorting as sk
from fastmf._threads import KERNEL_LOCK, threads_for
from fastmf.data.coerce import validation_frame
from fastmf.data.store import RatingStore
from fastmf.train.checks import available_memory, check_memory
from fastmf.train.defaults import AUTO_PARAMS, is_auto
from fastmf.train.layout import ShiftPiece, assign_blocks, shift_piece
from fastmf.train.lock import lock_of
from fastmf.train.loop import train_fresh, train_one_more
from fastmf.train.params import (
    Params,
    resolve_for_continuation,
    resolve_for_counts,
)
from fastmf.train.state import (
    check_continuation,
    continue_optimizer,
    fresh_state,
    initial_parameters,
    install_fresh,
)


def is_store(X: Any) -> bool:
    return isinstance(X, RatingStore)


@dataclass
class StreamedBlocks:
    """A store's blocks as the epoch sees a ``BlockSchedule``: the offsets and the workers'
    assignment in memory, the ratings read one shift at a time (``shift_pieces``). ``users``,
    ``items`` and ``values`` map the files (for the O(1) layout checks and the divergence
    sample); the kernels never read them."""

    store: RatingStore
    block_offsets: np.ndarray
    n_strata: int
    assign_offsets: np.ndarray
    assign_blocks: np.ndarray
    user_rows_below: int
    item_rows_below: int
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    streamed: bool = True
    wait_seconds: float = 0.0  # time the trainer waited for reads (the first shift's included)
    drop_cache: bool = False  # the store is larger than the memory left: read past the cache
    _sample: tuple | None = None

    @classmethod
    def of(cls, store: RatingStore, n_workers: int) -> StreamedBlocks:
        s = store.n_strata
        a_off, a_blocks = assign_blocks(store.block_offsets, s, n_workers)
        users = _mapped(store, "users.i32", "<i4")
        items = _mapped(store, "items.i32", "<i4")
        values = _mapped(store, "values.f32", "<f4")
        room = available_memory()
        big = room is not None and store.n_ratings * 12 > room // 2
        return cls(store, store.block_offsets, s, a_off, a_blocks, store.n_users, store.n_items,
                   users, items, values, drop_cache=big)  # fmt: skip

    @property
    def n_workers(self) -> int:
        return int(self.assign_offsets.shape[1] - 1)

    def with_workers(self, n_workers: int) -> StreamedBlocks:
        if n_workers == self.n_workers:
            return self
        offsets, blocks = assign_blocks(self.block_offsets, self.n_strata, n_workers)
        return replace(self, assign_offsets=offsets, assign_blocks=blocks)

    def shift_pieces(
        self, shift_order: np.ndarray, bounds: np.ndarray, owned: np.ndarray
    ) -> Iterator[tuple[ShiftPiece, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Each shift of ``shift_order`` in turn with its ratings, the next shift read on a
        thread while the caller trains this one (two shifts in memory at most)."""
        pieces = [shift_piece(self, int(t), bounds, owned) for t in shift_order]
        if not pieces:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastmf-read") as pool:
            ahead = pool.submit(self._read, pieces[0])
            for j, piece in enumerate(pieces):
                t0 = time.perf_counter()
                arrays = ahead.result()
                self.wait_seconds += time.perf_counter() - t0
                if j + 1 < len(pieces):
                    ahead = pool.submit(self._read, pieces[j + 1])
                yield piece, arrays

    def _read(self, piece: ShiftPiece) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = int(piece.bounds[-1])
        out = (np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.float32))
        self.store.read_blocks_into(list(piece.blocks), out, drop_cache=self.drop_cache)
        return out

    def sample(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ratings at global positions ``rows``, read once with readahead off (the
        divergence check's sample; a page fault per row of a memory map reads far more)."""
        key = rows.tobytes()
        if self._sample is None or self._sample[0] != key:
            self._sample = (key, self.store.read_positions(rows))
        return self._sample[1]

    def seen_csr(self, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        return store_seen_csr(self.store)


def _mapped(store: RatingStore, name: str, dtype: str) -> np.ndarray:
    path = store.path / name
    if store.n_ratings == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(store.n_ratings,))


def store_seen_csr(store: RatingStore) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items, sorted, as CSR (indptr int64, items int32), read block by block:
    the same arrays ``train.state.seen_csr`` builds from the layout in memory."""
    n_users = store.n_users
    starts = store.user_strata.starts
    s = store.n_strata
    counts, _ = store.rating_counts()
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    items_out = np.empty(int(indptr[-1]), dtype=np.int32)
    cursor = indptr[:-1].copy()
    for b, users, items, _ in store.iter_blocks():
        a = b // s
        order = np.argsort(users, kind="stable")
        u = users[order].astype(np.int64)
        first = np.searchsorted(u, u, side="left")  # each rating's rank among its user's
        dest = cursor[u] + (np.arange(u.shape[0]) - first)
        items_out[dest] = items[order]
        cursor[starts[a] : starts[a + 1]] += np.bincount(
            u - starts[a], minlength=int(starts[a + 1] - starts[a])
        )
    with KERNEL_LOCK:
        sk.sort_unsorted_segments(items_out, indptr)
    return indptr, items_out


def initialize_from_store(model: Any, store: RatingStore, params: Params, rng) -> None:
    """Fresh model state for a store: as ``train.state.initialize`` makes it for the same
    ratings in memory, bit for bit."""
    dtype = np.dtype(params.dtype)
    P, Q, bu, bi = initial_parameters(rng, store.n_users, store.n_items, params, dtype)
    if params.biases == "fixed":
        bu[:], bi[:] = store.fixed_biases(params.bias_damping)
    state = fresh_state(rng, store.user_strata, store.item_strata, params, P, Q)
    state.blocks = StreamedBlocks.of(store, threads_for(params.n_jobs))  # type: ignore[assignment]
    state.blocks_key = ("store", store.layout_fingerprint)
    ids = (store.user_map.ids, store.item_map.ids)
    install_fresh(model, state, store.mean, (bu, bi, P, Q), ids, store.rating_scale)


def fit(
    model: Any, store: RatingStore, validation: Any, item_titles: Any, resume: bool = False
) -> Any:
    """``MatrixFactorization.fit`` from a store (``resume``: from the checkpoint)."""
    with lock_of(model).writing():
        params = model._check_params()
        if params.validation_fraction is not None or (params.early_stopping and validation is None):
            raise ValueError(
                "validation_fraction (and early stopping without validation) holds out ratings "
                "at random, which a store cannot do while it streams: split the store with "
                "fastmf.data.store.split_store and pass the test store as validation="
            )
        rng = np.random.default_rng(params.random_state)
        val = validation_for(validation)
        titles = None if item_titles is None else dict(pd.Series(item_titles))
        params = resolve_for_store(params, store)
        check_memory(store.n_users, store.n_items, params)
        train_fresh(
            model, lambda: initialize_from_store(model, store, params, rng), val, params, titles,
            resume,
        )  # fmt: skip
    return model


def resolve_for_store(params: Params, store: RatingStore) -> Params:
    """``params`` with the "auto" parameters resolved from the store's counts of ratings per
    user and per item (``RatingStore.rating_counts``; only when a parameter is "auto")."""
    if not any(is_auto(getattr(params, name)) for name in AUTO_PARAMS):
        return params
    users, items = store.rating_counts()
    return resolve_for_counts(params, store.n_ratings, users, items)


def partial_fit(model: Any, store: RatingStore, validation: Any) -> Any:
    """``MatrixFactorization.partial_fit`` from a store: one more epoch."""
    with lock_of(model).writing():
        params = model._check_params()
        if hasattr(model, "user_factors_") and not hasattr(model, "_state"):
            raise ValueError(
                "this fitted model carries no training state (it was loaded from a file saved "
                "without it), so partial_fit cannot continue it; refit with fit"
            )
        val = validation_for(validation)
        fresh = not hasattr(model, "_state")
        if fresh:
            params = resolve_for_store(params, store)
            check_memory(store.n_users, store.n_items, params)
        else:
            params = resolve_for_continuation(model, params)
            check_continuation(model, params)

        def start() -> None:
            initialize_from_store(model, store, params, np.random.default_rng(params.random_state))

        def go_on() -> StreamedBlocks:
            blocks = blocks_of_store(model, store, threads_for(params.n_jobs))
            continue_optimizer(model, params)
            return blocks

        train_one_more(model, fresh, start, go_on, val, params)
    return model


def blocks_of_store(model: Any, store: RatingStore, n_workers: int) -> StreamedBlocks:
    """The store's blocks for a fitted model: the store must number users and items as the
    model does (the store it was fitted on, or one of the same ids)."""
    st = model._state
    key = ("store", store.layout_fingerprint)
    if isinstance(st.blocks, StreamedBlocks) and st.blocks_key == key:
        return st.blocks.with_workers(n_workers)
    same = (
        np.array_equal(store.user_map.ids, model.user_map_.ids)
        and np.array_equal(store.item_map.ids, model.item_map_.ids)
        and np.array_equal(store.user_strata.starts, st.user_strata.starts)
        and np.array_equal(store.item_strata.starts, st.item_strata.starts)
    )
    if not same:
        raise ValueError(
            f"partial_fit from {store!r}: the store numbers its users and items unlike the "
            f"fitted model, so its blocks are not the model's; continue with the store (or the "
            f"ratings) the model was fitted on, or fit anew from this store"
        )
    getattr(model, "seen_indptr_", None)  # keep the fitted data's seen items
    blocks = StreamedBlocks.of(store, n_workers)
    st.blocks, st.blocks_key = blocks, key
    return blocks


class StoreValidation:
    """A validation store, turned into model rows block by block when training starts."""

    def __init__(self, store: RatingStore):
        self.store = store

    def validation_rows(self, model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return store_rows(model, self.store)


def validation_for(validation: Any) -> Any:
    if validation is None:
        return None
    if is_store(validation):
        return StoreValidation(validation)
    return validation_frame(validation)


def store_rows(model: Any, store: RatingStore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rating of ``store`` as the model's rows (-1 when unknown) and float64 values, in
    the store's order."""
    u_of, i_of = row_maps(model, store)
    n = store.n_ratings
    users, items, values = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n)
    pos = 0
    for _, u, i, v in store.iter_blocks():
        users[pos : pos + u.shape[0]] = u_of[u]
        items[pos : pos + u.shape[0]] = i_of[i]
        values[pos : pos + u.shape[0]] = v
        pos += u.shape[0]
    return users, items, values


def row_maps(model: Any, store: RatingStore) -> tuple[np.ndarray, np.ndarray]:
    """The model row of each store row, users and items (-1 where the model lacks the id)."""
    return model.user_map_.lookup(store.user_map.ids), model.item_map_.lookup(store.item_map.ids)


def iter_predictions(
    model: Any, store: RatingStore, clip: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(predictions float64, ratings float32) block by block, in the store's order."""
    u_of, i_of = row_maps(model, store)
    for _, u, i, v in store.iter_blocks():
        pred = model._predict_rows(u_of[u], i_of[i])
        if clip:
            np.clip(pred, model.rating_scale_[0], model.rating_scale_[1], out=pred)
        yield pred, v


def predict_store(model: Any, store: RatingStore, clip: bool = True) -> np.ndarray:
    """Predictions for every rating of ``store``, in the store's order (block by block)."""
    with lock_of(model).reading():
        model._check_fitted()
        out = np.empty(store.n_ratings)
        pos = 0
        for pred, _ in iter_predictions(model, store, clip):
            out[pos : pos + pred.shape[0]] = pred
            pos += pred.shape[0]
    return out
