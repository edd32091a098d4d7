"""The model a fit starts from and what training carries between epochs: strata, layout,
factors, biases and optimizer state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastmf._biases import damped_biases
from fastmf._kernels import sorting as sk
from fastmf._kernels.hashing import hash_arrays, hash_rating_set
from fastmf._random import fill_normal
from fastmf._threads import KERNEL_LOCK, threads_for
from fastmf.data.blocks import damped_fixed_biases, layout_mean_and_scale, slices
from fastmf.data.ids import IdMap
from fastmf.data.ratings import Ratings
from fastmf.train.aligned import aligned_empty
from fastmf.train.layout import (
    BlockSchedule,
    PreparedRatings,
    Strata,
    build_blocks,
    schedule_of,
    strata_of,
)
from fastmf.train.loop import empty_history
from fastmf.train.params import SET_AT_FIT, Params, same
from fastmf.train.transaction import install


@dataclass
class TrainState:
    """What training carries from one epoch (and one ``partial_fit``) to the next."""

    rng: np.random.Generator
    user_strata: Strata
    item_strata: Strata
    optimizer: dict[str, np.ndarray]
    learning_rate: float
    plateau_best: float = math.inf
    blocks: BlockSchedule | None = None
    blocks_key: Any = ()  # a tuple, or a PendingKey that computes it when compared
    optimizer_name: str = ""  # the optimizer whose state ``optimizer`` holds
    fit_params: dict = field(default_factory=dict)  # the SET_AT_FIT parameters at fit

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["blocks"] = None  # rebuilt on demand; not worth a pickle's size
        state["blocks_key"] = ()
        return state


def initialize(model, ratings: Ratings, params: Params, rng: np.random.Generator) -> None:
    """Fresh model state for ``ratings``: strata, row order, biases and random factors."""
    dtype = np.dtype(model.dtype)
    n_users, n_items = ratings.n_users, ratings.n_items
    prepared = ratings if isinstance(ratings, PreparedRatings) else None
    u_pos, u_strata, i_pos, i_strata = strata_of(ratings) if prepared is None else prepared.rows
    u_ids = np.empty_like(ratings.user_map.ids)
    u_ids[u_pos] = ratings.user_map.ids
    i_ids = np.empty_like(ratings.item_map.ids)
    i_ids[i_pos] = ratings.item_map.ids
    P, Q, bu, bi = initial_parameters(rng, n_users, n_items, params, dtype)
    state = fresh_state(rng, u_strata, i_strata, params, P, Q)
    # the training data in model rows, laid out in blocks (kept for partial_fit)
    n_workers = threads_for(params.n_jobs)
    if prepared is None:
        state.blocks = layout_of(state, ratings, u_pos, i_pos, n_workers)
    else:  # laid out already, from the ratings as given (fit_ratings)
        state.blocks = schedule_of(prepared.laid, u_strata.n_strata, n_users, n_items, n_workers,
                                   row_maps=(u_pos, i_pos))  # fmt: skip
    if prepared is None:
        state.blocks_key = fingerprint(ratings)
    else:  # hashed from the layout when first compared: most fits never are
        maps = (ratings.n_users, ratings.n_items, id_maps_hash(ratings))
        state.blocks_key = PendingKey(_layout_fingerprint, maps, state.blocks, u_pos, i_pos)
    mu, scale = layout_mean_and_scale(state.blocks.values, state.blocks.block_offsets)
    if params.biases == "fixed":
        bu[:], bi[:] = layout_fixed_biases(state.blocks, mu, params.bias_damping)
    # seen_indptr_ and seen_items_ are built from these blocks when first asked for
    install_fresh(model, state, mu, (bu, bi, P, Q), (u_ids, i_ids), scale)


def initial_parameters(
    rng: np.random.Generator, n_users: int, n_items: int, params: Params, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P, Q, b_u, b_i) of a fresh fit: the factors drawn from N(0, init_std²), users' then
    items', on cache-line-aligned buffers, by a parallel counter-based draw whose bits do not
    depend on the thread count (``fastmf._random.fill_normal``); zero biases. The fit from
    memory and from a store both draw here, so the same seed gives them the same start, bit for
    bit."""
    k = params.n_factors
    P, Q = aligned_empty((n_users, k), dtype), aligned_empty((n_items, k), dtype)
    fill_normal(rng, [P, Q], params.init_std, threads_for(params.n_jobs))
    return P, Q, np.zeros(n_users, dtype=dtype), np.zeros(n_items, dtype=dtype)


def fresh_state(
    rng: np.random.Generator, user_strata: Any, item_strata: Any, params: Params,
    P: np.ndarray, Q: np.ndarray,
) -> TrainState:  # fmt: skip
    """The training state of a fresh fit (its blocks are set by the caller)."""
    return TrainState(
        rng=rng,
        user_strata=user_strata,
        item_strata=item_strata,
        optimizer=new_optimizer_state(params.optimizer, P, Q),
        learning_rate=params.learning_rate,
        optimizer_name=params.optimizer,
        fit_params={name: getattr(params, name) for name in SET_AT_FIT},
    )


def install_fresh(
    model: Any, state: TrainState, mu: float, parameters: tuple, ids: tuple, scale: tuple
) -> None:
    """Replace every fitted attribute of ``model`` by a fresh fit's: ``parameters`` are
    (b_u, b_i, P, Q) and ``ids`` the raw ids of the model's user and item rows."""
    bu, bi, P, Q = parameters
    install(
        model,
        {
            "global_mean_": mu,
            "user_bias_": bu,
            "item_bias_": bi,
            "user_factors_": P,
            "item_factors_": Q,
            "user_map_": IdMap(ids[0]),
            "item_map_": IdMap(ids[1]),
            "rating_scale_": scale,
            "item_titles_": None,
            "history_": empty_history(),
            "n_epochs_done_": 0,
            "best_epoch_": None,
            "_state": state,
        },
        clear=True,
    )


def blocks_for(model, ratings: Ratings, n_workers: int) -> BlockSchedule:
    """The block layout of ``ratings`` in model rows, reused when the data is the same."""
    st = model._state
    key = fingerprint(ratings)
    if st.blocks is not None and st.blocks_key == key:
        return st.blocks.with_workers(n_workers)
    getattr(model, "seen_indptr_", None)  # keep the fitted data's seen items: a new layout
    u_rows = model.user_map_.lookup(ratings.user_map.ids)
    i_rows = model.item_map_.lookup(ratings.item_map.ids)
    for name, rows, ids in (
        ("user", u_rows, ratings.user_map.ids),
        ("item", i_rows, ratings.item_map.ids),
    ):
        if (rows < 0).any():
            unknown = ids[rows < 0]
            raise ValueError(
                f"{unknown.size} {name} ids were not seen at fit (first: "
                f"{unknown[:3].tolist()}); partial_fit trains the users and items of the fitted "
                f"model only: refit, or fold new users in with fold_in"
            )
    blocks = layout_of(st, ratings, u_rows, i_rows, n_workers)
    st.blocks, st.blocks_key = blocks, key
    return blocks


def check_continuation(model, params: Params) -> None:
    """Refuse a parameter set at fit that was changed since (continuing makes no sense)."""
    at_fit = model._state.fit_params
    for name in SET_AT_FIT:
        if name not in at_fit:
            continue
        now = getattr(params, name)
        if name == "bias_damping" and at_fit.get("biases") != "fixed":
            continue
        if not same(now, at_fit[name]):
            raise ValueError(
                f"{name} was {at_fit[name]!r} at fit and is now {now!r}: {name} is set when "
                f"the model is made, so partial_fit cannot continue with the new value; "
                f"call fit to train anew with it, or set it back to {at_fit[name]!r}"
            )


def continue_optimizer(model, params: Params) -> None:
    """Fresh optimizer state when the optimizer changed since the last epoch."""
    st = model._state
    if st.optimizer_name != params.optimizer:
        st.optimizer = new_optimizer_state(
            params.optimizer, model.user_factors_, model.item_factors_
        )
        st.optimizer_name = params.optimizer


def layout_of(
    state: TrainState, ratings: Ratings, user_row: np.ndarray, item_row: np.ndarray, n_workers: int
) -> BlockSchedule:
    """The block layout of ``ratings``, whose users and items sit at ``user_row``/``item_row``."""
    return build_blocks(
        ratings.users, ratings.items, ratings.values, user_row, item_row,
        state.user_strata, state.item_strata, n_workers,
    )  # fmt: skip


def fixed_biases(ratings: Ratings, mu: float, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """Damped mean deviations: b_i = Σ(r − μ)/(n_i + damping), then b_u on what is left (one
    sweep of ``fastmf._biases.damped_biases``), in the ratings' own indices."""
    r = ratings
    return damped_biases(
        r.users, r.items, r.values, mu, damping, 1, n_users=r.n_users, n_items=r.n_items
    )


def layout_fixed_biases(
    blocks: BlockSchedule, mu: float, damping: float
) -> tuple[np.ndarray, np.ndarray]:
    """Damped mean deviations in model rows: b_i = Σ(r − μ)/(n_i + damping), then b_u on what
    is left, summed block by block in block order (as a store sums them)."""
    b = blocks
    passes = [slices(b.users, b.items, b.values, b.block_offsets) for _ in range(3)]
    return damped_fixed_biases(passes, mu, damping, b.user_rows_below, b.item_rows_below)


def new_optimizer_state(optimizer: str, P: np.ndarray, Q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row optimizer state: AdaGrad's sums of squares, Adam's moments and step counts."""
    dtype = P.dtype
    n_u, k = P.shape
    n_i = Q.shape[0]
    n1 = 1 if optimizer in ("adagrad", "adam", "row_adagrad") else 0
    n2 = 1 if optimizer == "adam" else 0
    row_state = optimizer == "row_adagrad"  # one sum of squares per factor row
    return {
        "bu_s1": np.zeros(n_u * n1, dtype),
        "bu_s2": np.zeros(n_u * n2, dtype),
        "bi_s1": np.zeros(n_i * n1, dtype),
        "bi_s2": np.zeros(n_i * n2, dtype),
        "P_s1": np.zeros((n_u * n1, 1 if row_state else k), dtype),
        "P_s2": np.zeros((n_u * n2, k), dtype),
        "Q_s1": np.zeros((n_i * n1, 1 if row_state else k), dtype),
        "Q_s2": np.zeros((n_i * n2, k), dtype),
        "u_steps": np.zeros(n_u * n2, np.int64),
        "i_steps": np.zeros(n_i * n2, np.int64),
    }


def hold_out(
    ratings: Ratings, fraction: float | None, rng: np.random.Generator
) -> tuple[Ratings, pd.DataFrame]:
    """A seeded share of the ratings (``fraction``, 10% when None) held out for validation."""
    fraction = fraction if fraction is not None else 0.1
    hold = rng.random(len(ratings)) < fraction
    if hold.all() or not hold.any():
        raise ValueError(
            f"validation_fraction={fraction} leaves no ratings for training or none "
            f"for validation with {len(ratings)} ratings"
        )
    return ratings.subset(~hold), ratings.subset(hold).to_dataframe()


def seen_csr(blocks: BlockSchedule, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's training items, sorted, as CSR (indptr int64, items int32).

    Blocks come in (user stratum, item stratum) order and item rows are numbered stratum by
    stratum, so a stable bucketing by user yields every user's items nearly sorted: only a user
    whose ratings in a block span two of its interleaved runs needs sorting.
    """
    if getattr(blocks, "streamed", False):  # a store's blocks, read from disk
        streamed: Any = blocks  # train.from_store.StreamedBlocks
        return streamed.seen_csr(n_users)
    with KERNEL_LOCK:
        order, indptr = sk.stable_bucket_order(blocks.users, n_users)
        items = blocks.items[order]
        sk.sort_unsorted_segments(items, indptr)
    return indptr, items


class PendingKey:
    """A data key computed on first use, by ``compute(*args)``: it compares (``==``) and
    prints as the key itself, and lets go of ``args`` once computed."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, compute: Any, *args: Any) -> None:
        self._pending: tuple | None = (compute, args)
        self._value: tuple = ()

    def value(self) -> tuple:
        if self._pending is not None:
            compute, args = self._pending
            self._value, self._pending = compute(*args), None
        return self._value

    def __eq__(self, other: object) -> bool:
        return self.value() == (other.value() if isinstance(other, PendingKey) else other)

    def __repr__(self) -> str:
        return repr(self.value())


def _layout_fingerprint(
    maps: tuple, blocks: BlockSchedule, user_row: np.ndarray, item_row: np.ndarray
) -> tuple:
    """``fingerprint`` of the ratings laid out in ``blocks`` (their users and items at
    ``user_row``/``item_row``; ``maps``: their user and item counts and ``id_maps_hash``): the
    same set of triples, relabelled back to indices on the fly."""
    user_index = np.empty(len(user_row), dtype=np.int32)
    user_index[user_row] = np.arange(len(user_row), dtype=np.int32)
    item_index = np.empty(len(item_row), dtype=np.int32)
    item_index[item_row] = np.arange(len(item_row), dtype=np.int32)
    relabel = (user_index, item_index)
    return (len(blocks.values), *maps,
            hash_rating_set(blocks.users, blocks.items, blocks.values, relabel))  # fmt: skip


def id_maps_hash(ratings: Ratings) -> int:
    """The part of ``fingerprint`` that hashes the id maps."""
    return hash_arrays(ratings.user_map.ids, ratings.item_map.ids)


def fingerprint(ratings: Ratings) -> tuple:
    """The identity of a ratings set, to reuse its block layout: a hash of the id maps and of
    the set of (user, item, rating) triples, whatever their order (a fit keeps the given
    order, ``partial_fit`` may see the same ratings sorted), at memory speed."""
    return (
        len(ratings),
        ratings.n_users,
        ratings.n_items,
        id_maps_hash(ratings),
        hash_rating_set(ratings.users, ratings.items, ratings.values),
    )
