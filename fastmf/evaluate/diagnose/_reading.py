"""One training run as diagnose's rules read it: the curves, the parameters, the headline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fastmf.evaluate.diagnose._baseline import bias_baseline
from fastmf.evaluate.diagnose._history import as_history, clean_history
from fastmf.evaluate.diagnose._thresholds import REG_SHRINK


@dataclass(frozen=True)
class Run:
    """The curves of a history (one value per epoch) and what is known beside them.

    ``val`` is None without validation data; ``best`` is the index of the lowest validation
    RMSE; ``ratio`` is the last reg loss over the last base loss; ``model_best`` is the epoch
    early stopping restored (None when it did not); ``summary`` holds the headline figures.
    """

    h: pd.DataFrame
    p: dict[str, Any]
    epochs: np.ndarray
    base: np.ndarray
    regl: np.ndarray
    train: np.ndarray
    val: np.ndarray | None
    best: int | None
    ratio: float
    model_best: Any
    summary: dict[str, float]

    @property
    def n(self) -> int:
        """Number of epochs."""
        return len(self.h)

    @property
    def shrank(self) -> bool:
        """Whether the penalty is pulling the factors toward zero.

        The reg loss ended below half its first epoch's and at its lowest (within 10%); a reg
        loss that fell after a wild first epoch and grows again is not that.
        """
        regl = self.regl
        return bool(
            regl[0] > 0 and regl[-1] < REG_SHRINK * regl[0] and regl[-1] <= 1.1 * regl.min()
        )


def read_run(model_or_history: Any, data: Any, params: Mapping[str, Any] | None) -> Run:
    """The run ``diagnose`` was given, with its headline figures and baselines."""
    raw, model_params, model = as_history(model_or_history)
    h = clean_history(raw)
    p = dict(model_params)
    if params is not None:
        p.update(params)
    epochs = h["epoch"].to_numpy()
    base = h["base_loss"].to_numpy()
    regl = h["reg_loss"].to_numpy()
    train = h["train_rmse"].to_numpy()
    val = h["val_rmse"].to_numpy() if "val_rmse" in h.columns else None

    ratio = float(regl[-1] / base[-1]) if base[-1] > 0 else math.inf
    summary: dict[str, float] = {
        "n_epochs": float(len(h)),
        "epoch": float(epochs[-1]),
        "base_loss": float(base[-1]),
        "reg_loss": float(regl[-1]),
        "total_loss": float(h["total_loss"].iloc[-1]),
        "reg_ratio": ratio,
        "train_rmse": float(train[-1]),
    }
    best = None
    if val is not None:
        valid = np.where(np.isnan(val), np.inf, val)
        best = int(np.argmin(valid))
        summary.update(
            val_rmse=float(val[-1]), best_val_rmse=float(val[best]), best_epoch=float(epochs[best])
        )
    if data is not None:
        rating_std, bias_rmse = bias_baseline(data)
        summary.update(rating_std=rating_std, bias_rmse=bias_rmse)
    model_best = getattr(model, "best_epoch_", None) if model is not None else None
    if model_best is not None:
        summary["restored_epoch"] = float(model_best)
    return Run(h, p, epochs, base, regl, train, val, best, ratio, model_best, summary)
