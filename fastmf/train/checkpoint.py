"""Checkpoints after every epoch, and resuming a fit from the last one to the same bits.

A checkpoint is one ``checkpoint.npz`` in ``checkpoint_dir``: the factors, biases, optimizer
state, history, the random stream and the schedule's state after an epoch, with what identifies
the fit (its parameters and the fingerprint of its training data). It is written to a temporary
file in the same folder, flushed and renamed over the last one, so a fit killed at any moment
leaves the previous checkpoint whole. A fit started with ``resume=True`` makes the same initial
model, puts the checkpoint over it and trains the epochs left: the same bits as a fit that was
never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from fastmf.train.params import Params

FILE = "checkpoint.npz"
FORMAT = 1
_MODEL = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")
# what may change between a fit and its resumption (n_epochs: a resumed fit may go further; the
# cluster and its time-outs: a fit may resume on another)
_NOT_IDENTITY = (
    "callbacks",
    "verbose",
    "n_jobs",
    "checkpoint_dir",
    "client",
    "timeout",
)


def check_checkpoint_dir(value: Any) -> Path | None:
    """None, or the folder as a Path (created when missing)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be a folder path or None, got {value!r}")
    return Path(value)


def identity(model: Any) -> dict[str, str]:
    """What a checkpoint must share with the fit that resumes it: the parameters that shape the
    training (as text) and the fingerprint of the training data. ``n_epochs`` belongs to it only
    where it shapes the schedule (``lr_schedule="auto"`` spreads its decay over ``n_epochs``):
    otherwise a fit may resume a shorter one's checkpoint and go on."""
    given = model.get_params()
    skip = _NOT_IDENTITY if given.get("lr_schedule") == "auto" else (*_NOT_IDENTITY, "n_epochs")
    params = {
        k: (getattr(v, "__qualname__", None) or repr(v)) if callable(v) else repr(v)
        for k, v in given.items()
        if k not in skip
    }
    params["data"] = repr(model._state.blocks_key)
    return params


def write(model: Any, folder: Path, monitor: dict) -> Path:
    """The model after its last recorded epoch, atomically into ``folder/checkpoint.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    st = model._state
    arrays = {name: getattr(model, name) for name in _MODEL}
    arrays.update({f"opt_{k}": v for k, v in st.optimizer.items()})
    arrays.update(_frame_arrays("history", model.history_))
    batch = model.__dict__.get("batch_history_")
    if batch is not None:
        arrays.update(_frame_arrays("batch", batch))
    best = monitor.get("snapshot")
    if best is not None:
        arrays.update({f"best_{k}": v for k, v in best.items() if k in _MODEL})
    meta = {
        "format": FORMAT,
        "identity": identity(model),
        "n_epochs_done": int(model.n_epochs_done_),
        "rng": st.rng.bit_generator.state,
        "learning_rate": st.learning_rate,
        "plateau_best": _finite_or_none(st.plateau_best),
        "optimizer": st.optimizer_name,
        "monitor_best": _finite_or_none(monitor.get("best", math.inf)),
        "wait": int(monitor.get("wait", 0)),
        "best_epoch": None if best is None else int(best["best_epoch_"]),
        "history_columns": list(model.history_.columns),
        "batch_columns": None if batch is None else list(batch.columns),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    target = folder / FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def read(folder: Path) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` (its arrays and ``meta``), or None when there is none."""
    path = folder / FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        out["meta"] = json.loads(str(out["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"the checkpoint {path} cannot be read ({exc}); remove it to start the fit anew"
        ) from exc
    if out["meta"].get("format") != FORMAT:
        raise ValueError(f"the checkpoint {path} has an unknown format; remove it to start anew")
    return out


def epochs_left(model: Any, params: Params, resume_fit: bool) -> tuple[int, dict]:
    """The epochs a fit runs and early stopping's state: all of ``n_epochs`` from scratch, or
    what the checkpoint leaves with ``resume_fit``."""
    monitor: dict = {}
    if not resume_fit:
        return params.n_epochs, monitor
    return resume(model, params.checkpoint_dir, params.n_epochs, monitor), monitor


def resume(model: Any, folder: Path | None, n_epochs: int, monitor: dict) -> int:
    """Put the checkpoint in ``folder`` over the freshly initialized ``model`` and return the
    epochs left of ``n_epochs`` (all of them when there is no checkpoint yet)."""
    if folder is None:
        raise ValueError("resume=True needs checkpoint_dir, the folder the checkpoints are in")
    ck = read(folder)
    if ck is None:
        return n_epochs
    meta = ck["meta"]
    ours = identity(model)
    changed = sorted(k for k in ours.keys() | meta["identity"].keys()
                     if ours.get(k) != meta["identity"].get(k))  # fmt: skip
    if changed:
        raise ValueError(
            f"the checkpoint in {folder} belongs to another fit: {', '.join(changed)} differ; "
            f"resume with the data and parameters of that fit, or use another checkpoint_dir"
        )
    st = model._state
    for name in _MODEL:
        getattr(model, name)[...] = ck[name]
    if meta["optimizer"] != st.optimizer_name:
        raise ValueError(f"the checkpoint in {folder} holds {meta['optimizer']} state")
    for k, v in st.optimizer.items():
        v[...] = ck[f"opt_{k}"]
    st.rng.bit_generator.state = meta["rng"]
    st.learning_rate = meta["learning_rate"]
    st.plateau_best = _inf_if_none(meta["plateau_best"])
    model.n_epochs_done_ = meta["n_epochs_done"]
    model.history_ = _frame(ck, "history", meta["history_columns"])
    if meta["batch_columns"] is not None:
        model.batch_history_ = _frame(ck, "batch", meta["batch_columns"])
    monitor["best"] = _inf_if_none(meta["monitor_best"])
    monitor["wait"] = meta["wait"]
    if meta["best_epoch"] is not None:
        monitor["snapshot"] = {k: ck[f"best_{k}"] for k in _MODEL}
        monitor["snapshot"]["best_epoch_"] = meta["best_epoch"]
    return max(0, n_epochs - meta["n_epochs_done"])


def _frame_arrays(prefix: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {f"{prefix}_{i}": frame[c].to_numpy() for i, c in enumerate(frame.columns)}


def _frame(ck: dict, prefix: str, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: ck[f"{prefix}_{i}"] for i, c in enumerate(columns)})


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _inf_if_none(x: float | None) -> float:
    return math.inf if x is None else float(x)
