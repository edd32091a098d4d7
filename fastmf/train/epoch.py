"""One epoch through the kernels, and the learning rate of each epoch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fastmf._kernels import minibatch
from fastmf._kernels import training as K
from fastmf._threads import KERNEL_LOCK
from fastmf._validation import check_float
from fastmf.train import batch_points as bp
from fastmf.train import guard
from fastmf.train.aligned import aligned_zeros
from fastmf.train.defaults import auto_schedule_decay
from fastmf.train.kernel_state import kernel_state
from fastmf.train.layout import BlockSchedule

if TYPE_CHECKING:
    from fastmf.train.params import Params


def run_epoch(
    model: Any, blocks: BlockSchedule, params: Params, lr: float, dtype: np.dtype, scratch
) -> tuple[float, float, pd.DataFrame | None]:
    """One epoch through the kernels; returns the summed base and regularization losses, and
    with ``record_batches`` the epoch's loss points (else None). Every array the kernel gets
    is checked first (``_guard``)."""
    st = model._state
    bu, bi, P, Q = model.user_bias_, model.item_bias_, model.user_factors_, model.item_factors_
    n_users, n_items = len(model.user_map_), len(model.item_map_)
    guard.check_parameters(model.global_mean_, bu, bi, P, Q, n_users, n_items)
    guard.check_layout(blocks, n_users, n_items)
    shift_order = st.rng.permutation(blocks.n_strata).astype(np.int64)
    if params.record_batches:
        bounds, owned = bp.batch_points(blocks.block_offsets, params.batch_size)
    else:
        bounds, owned = bp.block_points(blocks.block_offsets)
    point_losses = np.zeros((bounds.shape[0] - 1, 2), dtype=np.float64)
    guard.check_points(bounds, owned, len(blocks.values), blocks.n_strata**2)
    if getattr(blocks, "streamed", False):
        # from disk: one kernel run per sub-epoch over that shift's blocks, read ahead
        one = np.zeros(1, dtype=np.int64)
        streamed: Any = blocks  # train.from_store.StreamedBlocks
        for piece, (users, items, values) in streamed.shift_pieces(shift_order, bounds, owned):
            guard.check_points(piece.bounds, piece.owned, len(values), blocks.n_strata)
            local = np.zeros((piece.points.shape[0], 2), dtype=np.float64)
            run = (users, items, values, piece.bounds, piece.owned, one, piece.assign_offsets,
                   piece.assign_blocks)  # fmt: skip
            _train(model, blocks, params, lr, dtype, scratch, run, local)
            point_losses[piece.points] = local
    else:
        run = (blocks.users, blocks.items, blocks.values, bounds, owned, shift_order,
               blocks.assign_offsets, blocks.assign_blocks)  # fmt: skip
        _train(model, blocks, params, lr, dtype, scratch, run, point_losses)
    points = None
    if params.record_batches:
        order = bp.execution_order(owned, shift_order, blocks.n_strata)
        epoch = model.n_epochs_done_ + 1
        points = bp.points_frame(epoch, bounds, order, point_losses, params.batch_size)
        point_losses = point_losses[order]
    totals = point_losses.sum(axis=0)  # fixed order: point by point
    return float(totals[0]), float(totals[1]), points


def _train(
    model: Any, blocks: Any, params: Params, lr: float, dtype: np.dtype, scratch, common: tuple,
    point_losses: np.ndarray,
) -> None:  # fmt: skip
    """The epoch kernel over the ratings and schedule in ``common`` (every shift it lists)."""
    st = model._state
    bu, bi, P, Q = model.user_bias_, model.item_bias_, model.user_factors_, model.item_factors_
    n_users, n_items = len(model.user_map_), len(model.item_map_)
    learn_bias = params.biases == "learned"
    mu = dtype.type(model.global_mean_)
    lr_, lam, lam_b = dtype.type(lr), dtype.type(params.reg), dtype.type(params.reg_bias)
    if not uses_batch_kernel(params):
        with KERNEL_LOCK:
            K.sgd_epoch(*common, mu, bu, bi, P, Q, lr_, lam, lam_b, learn_bias, point_losses)
    else:
        opt, k = params.optimizer, P.shape[1]
        guard.check_optimizer_state(st.optimizer, opt, dtype, n_users, n_items, k)
        state = kernel_state(st.optimizer, opt, dtype, n_users, n_items, k)
        guard.check_kernel_state(state, opt, dtype, n_users, n_items, k)
        slots = slots_per_batch(params.batch_size, blocks)
        guard.check_scratch(scratch, blocks.n_workers, slots, k, dtype, n_users, n_items)
        with KERNEL_LOCK:
            minibatch.batch_epoch(
                *common, params.batch_size, mu, bu, bi, P, Q, lr_, lam, lam_b, learn_bias,
                minibatch.OPTIMIZER_CODES[opt], *state, *scratch, point_losses,
            )  # fmt: skip


def predict_rows(model, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    P, Q = model.user_factors_, model.item_factors_
    bu, bi, mu = model.user_bias_, model.item_bias_, model.global_mean_
    guard.check_parameters(mu, bu, bi, P, Q, len(model.user_map_), len(model.item_map_))
    u = np.ascontiguousarray(u, dtype=np.int32)
    i = np.ascontiguousarray(i, dtype=np.int32)
    guard.check_rows(u, "the user rows", P.shape[0])
    guard.check_rows(i, "the item rows", Q.shape[0])
    out = np.empty(u.shape[0], dtype=P.dtype)
    with KERNEL_LOCK:
        K.predict(u, i, P.dtype.type(mu), bu, bi, P, Q, out)
    return out.astype(np.float64)


# ---------------------------------------------------------------------- helpers


def epoch_learning_rate(model, epoch: int, params: Params) -> float:
    lr0 = params.learning_rate
    schedule = params.lr_schedule
    if callable(schedule):
        lr = float(schedule(epoch, lr0))
        return check_float(lr, "the learning rate returned by lr_schedule", strict=True)
    if schedule == "auto":
        decay = auto_schedule_decay(params.n_epochs)
        if model.lr_decay is not None:
            decay = model.lr_decay ** (math.log(decay) / math.log(0.8))
        return lr0 * decay**epoch
    if schedule == "step":
        decay = params.lr_decay if params.lr_decay is not None else 0.5
        return lr0 * decay ** (epoch // params.lr_step_size)
    if schedule == "exponential":
        decay = params.lr_decay if params.lr_decay is not None else 0.8
        return lr0 * decay**epoch
    if schedule == "plateau":
        return model._state.learning_rate
    return lr0


def after_epoch_schedule(model, monitored: float, params: Params) -> None:
    """The plateau schedule's bookkeeping: cut the rate when the error stops improving."""
    if params.lr_schedule != "plateau":
        return
    st = model._state
    if monitored < st.plateau_best - params.min_delta:
        st.plateau_best = monitored
    else:
        decay = params.lr_decay if params.lr_decay is not None else 0.5
        st.learning_rate *= decay


def uses_batch_kernel(params: Params) -> bool:
    return params.batch_size > 1 or params.optimizer != "sgd"


def scratch_for(
    params: Params, blocks: BlockSchedule, n_users: int, n_items: int, dtype: np.dtype
) -> tuple:
    """The mini-batch kernel's scratch, per side (users, then items): each worker's gradient
    slots, each slot's bias gradient and its partners' squared norms (all zero between
    batches), each slot's rating count and model row, and the slot of every model row
    (-1 when free; rows are owned by one block at a time, so the workers share it)."""
    w, b, k = blocks.n_workers, slots_per_batch(params.batch_size, blocks), params.n_factors
    return tuple(
        x
        for n_rows in (n_users, n_items)
        for x in (
            aligned_zeros((w, b, k), dtype),
            np.zeros((w, b, 2), dtype),
            np.zeros((w, b, 2), np.int32),
            np.full(n_rows, -1, np.int32),
        )
    )


def slots_per_batch(batch_size: int, blocks: BlockSchedule) -> int:
    """Gradient slots a batch can need: one per rating, and a batch holds at most
    ``batch_size`` ratings of one block."""
    largest = int(np.diff(blocks.block_offsets).max()) if blocks.n_strata else 1
    return max(1, min(batch_size, largest))
