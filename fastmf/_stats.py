"""Error statistics of predicted ratings: RMSE and MAE of two checked arrays.

A bottom-layer module: every room that scores predictions (training history, serving checks,
evaluation, the shell) computes its RMSE here, so the figure is written once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_finite_vector", "mae", "rmse", "root_mean_square"]


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error of predicted ratings ``y_pred`` against ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return root_mean_square(p - t)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error of predicted ratings ``y_pred`` against ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def root_mean_square(residuals: np.ndarray) -> float:
    """``sqrt(mean(residuals**2))`` of a float array the caller has already checked."""
    return float(np.sqrt(np.mean(residuals**2)))


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = as_finite_vector(y_true, "y_true")
    p = as_finite_vector(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true has {t.shape[0]} values but y_pred has {p.shape[0]}; pass one prediction "
            f"per rating"
        )
    if t.shape[0] == 0:
        raise ValueError("y_true is empty; the error of no ratings is undefined")
    return t, p


def as_finite_vector(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-d float64 array, refusing non-numeric, multi-dimensional or NaN input."""
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim <= 1 else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(
            f"{name} has {bad.shape[0]} NaN or infinite values (first at row {bad[0]}); drop or "
            f"fill them"
        )
    return arr
