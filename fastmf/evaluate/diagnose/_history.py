"""Reading a training history: from a fitted model, a DataFrame or a mapping of columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def as_history(model_or_history: Any) -> tuple[pd.DataFrame, dict[str, Any], Any]:
    """The history DataFrame, the model's parameters and the model (or None)."""
    if isinstance(model_or_history, pd.DataFrame):
        return model_or_history, {}, None
    if isinstance(model_or_history, Mapping):
        return pd.DataFrame(dict(model_or_history)), {}, None
    history = getattr(model_or_history, "history_", None)
    if history is None:
        if hasattr(model_or_history, "get_params"):
            raise ValueError(
                f"{type(model_or_history).__name__} has no history_: it is not fitted; "
                "call fit(...) first"
            )
        raise TypeError(
            "model_or_history must be a fitted MatrixFactorization, a history DataFrame or a "
            f"mapping of columns, got {type(model_or_history).__name__}"
        )
    params: dict[str, Any] = {}
    if hasattr(model_or_history, "get_params"):
        params = dict(model_or_history.get_params())
        for name, value in params.items():  # "auto" and None: the values the fit resolved
            if value is None or (isinstance(value, str) and value == "auto"):
                resolved = getattr(model_or_history, f"{name}_", None)
                if resolved is not None:
                    params[name] = resolved
    return history, params, model_or_history


def history_frame(model_or_history: Any) -> pd.DataFrame:
    """The training history as a clean DataFrame (checked, missing derived columns filled).

    Parameters
    ----------
    model_or_history : MatrixFactorization or DataFrame or mapping
        A fitted model (its ``history_`` is read) or a history with at least the columns
        ``base_loss`` and ``reg_loss``.

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``base_loss``, ``reg_loss``, ``total_loss``, ``train_rmse`` and,
        where present and not all missing, ``val_rmse``, ``val_mae``, ``learning_rate``,
        ``seconds``; float columns as float64.
    """
    history, _, _ = as_history(model_or_history)
    return clean_history(history)


def clean_history(history: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("base_loss", "reg_loss") if c not in history.columns]
    if missing:
        raise ValueError(
            f"history lacks the column(s) {missing}; a fastmf history has epoch, base_loss, "
            f"reg_loss, total_loss, train_rmse[, val_rmse, val_mae], learning_rate, seconds "
            f"(got {list(history.columns)})"
        )
    if len(history) == 0:
        raise ValueError("history is empty: the model trained no epoch; fit it first")
    h = pd.DataFrame(index=pd.RangeIndex(len(history)))
    epochs = history["epoch"] if "epoch" in history.columns else np.arange(1, len(history) + 1)
    h["epoch"] = np.asarray(epochs, dtype=np.int64)
    h["base_loss"] = np.asarray(history["base_loss"], dtype=np.float64)
    h["reg_loss"] = np.asarray(history["reg_loss"], dtype=np.float64)
    if "total_loss" in history.columns:
        h["total_loss"] = np.asarray(history["total_loss"], dtype=np.float64)
    else:
        h["total_loss"] = h["base_loss"] + h["reg_loss"]
    if "train_rmse" in history.columns:
        h["train_rmse"] = np.asarray(history["train_rmse"], dtype=np.float64)
    else:
        h["train_rmse"] = np.sqrt(h["base_loss"])
    for col in ("val_rmse", "val_mae", "learning_rate", "seconds"):
        if col in history.columns:
            values = np.asarray(history[col], dtype=np.float64)
            if not np.all(np.isnan(values)):
                h[col] = values
    return h
