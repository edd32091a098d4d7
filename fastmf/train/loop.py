"""The epoch loop: history, validation, early stopping, callbacks, Ctrl-C and the progress bar."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fastmf._stats import root_mean_square
from fastmf._threads import numba_threads
from fastmf.data.coerce import pairs
from fastmf.train.aligned import cache_aligned
from fastmf.train.checkpoint import epochs_left
from fastmf.train.checkpoint import write as write_checkpoint
from fastmf.train.checks import check_divergence
from fastmf.train.epoch import (
    after_epoch_schedule,
    epoch_learning_rate,
    run_epoch,
    scratch_for,
    uses_batch_kernel,
)
from fastmf.train.layout import BlockSchedule
from fastmf.train.transaction import Checkpoint, install

if TYPE_CHECKING:
    from fastmf.train.params import Params


def train_fresh(
    model: Any, initialize: Callable[[], None], val: Any, params: Params, titles: Any,
    resume: bool,
) -> None:  # fmt: skip
    """A fit from scratch: ``initialize()`` makes the model's state, then its epochs run (with
    ``resume``, those the checkpoint leaves). Completes, or leaves the previous fitted model
    exactly as it was, whatever the exception."""
    checkpoint = Checkpoint(model, in_place=False)
    try:
        initialize()
        model.item_titles_ = titles
        n_epochs, monitor = epochs_left(model, params, resume)
        train_epochs(model, model._state.blocks, val, params, n_epochs, checkpoint, monitor)
    except BaseException as exc:
        checkpoint.settle(model, exc)
        raise


def train_one_more(
    model: Any, fresh: bool, initialize: Callable[[], None],
    continuing_blocks: Callable[[], Any], val: Any, params: Params,
) -> None:  # fmt: skip
    """``partial_fit``'s epoch: on a fresh model ``initialize()`` first, else on the blocks
    ``continuing_blocks()`` gives (it also continues the optimizer). Completes, or leaves the
    model exactly as it was, whatever the exception."""
    checkpoint = Checkpoint(model, in_place=not fresh)
    try:
        if fresh:
            initialize()
            blocks = model._state.blocks
        else:
            blocks = continuing_blocks()
        train_epochs(model, blocks, val, params, 1, checkpoint)
    except BaseException as exc:
        checkpoint.settle(model, exc)
        raise


def train_epochs(
    model: Any,
    blocks: BlockSchedule,
    val: pd.DataFrame | None,
    params: Params,
    n_epochs: int,
    checkpoint: Checkpoint,
    monitor: dict | None = None,
) -> None:
    """Run ``n_epochs`` epochs over ``blocks``, recording history, validation, callbacks and
    early stopping; ``checkpoint.completed_epochs`` counts the epochs recorded. With
    ``params.checkpoint_dir`` every recorded epoch is written there (``train.checkpoint``);
    ``monitor`` carries early stopping's state from a resumed checkpoint. A model with a
    ``_run_epoch`` method (the cluster trainer) runs its epochs through it."""
    n_threads = blocks.n_workers
    # the defaults that follow the batch size, as resolved by _check_params
    # and the data-aware ones, as resolved from the training data's counts
    names = ("optimizer", "learning_rate", "n_factors", "n_epochs", "reg", "init_std")
    install(model, {f"{name}_": getattr(params, name) for name in names})
    dtype = np.dtype(model.dtype)
    # factors loaded, unpickled or set by hand may start anywhere: the kernels want cache lines
    install(
        model,
        {
            "user_factors_": cache_aligned(model.user_factors_),
            "item_factors_": cache_aligned(model.item_factors_),
        },
    )
    val_rows = None if val is None else validation_rows(model, val)
    mon = {"best": math.inf, "wait": 0, "snapshot": None, **(monitor or {})}
    folder = params.checkpoint_dir
    run = getattr(model, "_run_epoch", None) or run_epoch
    scratch = (
        scratch_for(params, blocks, len(model.user_map_), len(model.item_map_), dtype)
        if uses_batch_kernel(params)
        else None
    )
    progress = Progress(n_epochs, params.verbose)
    try:
        with numba_threads(n_threads), deferred_interrupt() as interrupt:
            for _ in range(n_epochs):
                epoch = model.n_epochs_done_
                lr = epoch_learning_rate(model, epoch, params)
                interrupt.hold = checkpoint.in_epoch = True  # until the epoch is recorded
                t0 = time.perf_counter()
                base, regl, points = run(model, blocks, params, lr, dtype, scratch)
                seconds = time.perf_counter() - t0
                check_divergence(model, blocks, base, regl, epoch, lr, params)
                row = history_row(model, epoch, base, regl, len(blocks.values), val_rows)
                row["learning_rate"] = lr
                row["seconds"] = seconds
                model.n_epochs_done_ = epoch + 1
                model.history_ = append_history(model.history_, row)
                if epoch == 0:  # a fresh fit starts a new record
                    model.__dict__.pop("batch_history_", None)
                if points is not None:
                    earlier = model.__dict__.get("batch_history_")
                    both = [points] if earlier is None else [earlier, points]
                    model.batch_history_ = pd.concat(both, ignore_index=True)
                checkpoint.completed_epochs += 1
                interrupt.hold = checkpoint.in_epoch = False
                progress.update(row)
                monitored = row.get("val_rmse", row["total_loss"])
                after_epoch_schedule(model, monitored, params)
                stop = False
                if params.early_stopping and val_rows is not None:
                    if monitored < mon["best"] - params.min_delta:
                        mon.update(best=monitored, wait=0, snapshot=snapshot(model))
                    else:
                        mon["wait"] += 1
                        stop = mon["wait"] >= params.patience
                if folder is not None:
                    write_checkpoint(model, folder, mon)
                for cb in params.callbacks:
                    if cb(model, dict(row)) is True:
                        stop = True
                if interrupt.hit:
                    raise KeyboardInterrupt
                if stop:
                    break
    finally:
        progress.close()
    if mon["snapshot"] is not None:
        restore(model, mon["snapshot"])


def validation_rows(model: Any, val: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation ratings as model rows (-1 for ids unseen in training) and values."""
    if hasattr(val, "validation_rows"):  # a store, read block by block
        store: Any = val
        return store.validation_rows(model)
    vu, vi = pairs(val)
    return (
        model.user_map_.lookup(vu),
        model.item_map_.lookup(vi),
        val["rating"].to_numpy(dtype=np.float64),
    )


def history_row(
    model: Any, epoch: int, base: float, regl: float, n_train: int, val_rows: tuple | None
) -> dict[str, Any]:
    """The epoch's losses (sums over the training ratings, as means) and validation errors."""
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "base_loss": base / n_train,
        "reg_loss": regl / n_train,
        "total_loss": (base + regl) / n_train,
        "train_rmse": math.sqrt(base / n_train),
    }
    if val_rows is not None:
        pred = model._predict_rows(val_rows[0], val_rows[1])
        np.clip(pred, model.rating_scale_[0], model.rating_scale_[1], out=pred)
        err = pred - val_rows[2]
        row["val_rmse"] = root_mean_square(err)
        row["val_mae"] = float(np.mean(np.abs(err)))
    return row


def snapshot(model: Any) -> dict:
    return {
        "user_bias_": model.user_bias_.copy(),
        "item_bias_": model.item_bias_.copy(),
        "user_factors_": model.user_factors_.copy(),
        "item_factors_": model.item_factors_.copy(),
        "best_epoch_": model.n_epochs_done_,
    }


def restore(model: Any, snapshot: dict) -> None:
    """Put the best epoch's parameters back into the live arrays (training state stays aligned)."""
    for name in ("user_bias_", "item_bias_", "user_factors_", "item_factors_"):
        getattr(model, name)[...] = snapshot[name]
    model.best_epoch_ = snapshot["best_epoch_"]


HISTORY_COLUMNS = ["epoch", "base_loss", "reg_loss", "total_loss", "train_rmse"]


def empty_history() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "epoch" else "float64") for c in HISTORY_COLUMNS}
    )


def append_history(history: pd.DataFrame, row: dict) -> pd.DataFrame:
    new = pd.DataFrame([row])
    if len(history) == 0:
        return new.reset_index(drop=True)
    return pd.concat([history, new], ignore_index=True)


class Interrupt:
    """Ctrl-C seen during training: ``hit`` once pressed; ``hold`` while an epoch is in flight."""

    hit = False
    hold = False


@contextmanager
def deferred_interrupt() -> Iterator[Interrupt]:
    """Hold a Ctrl-C until the running epoch is recorded. A second Ctrl-C between epochs (in a
    callback, say) interrupts at once; during an epoch nothing interrupts, so the model is never
    left between two epochs."""
    flag = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.hit and not flag.hold:
            raise KeyboardInterrupt
        flag.hit = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Progress:
    """A per-epoch progress bar (tqdm) showing the losses; silent when verbose is 0."""

    def __init__(self, total: int, verbose: int):
        self.bar = None
        if verbose and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="epoch", desc="fastmf", leave=True)

    def update(self, row: dict) -> None:
        if self.bar is not None:
            shown = {k: f"{row[k]:.4f}" for k in ("base_loss", "reg_loss", "val_rmse") if k in row}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
