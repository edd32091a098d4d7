"""Checks on user input, run in Python before any kernel, and the errors they raise."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastmf._kernels.jit import SERIAL_BELOW
from fastmf._kernels.values import count_nonfinite
from fastmf._threads import KERNEL_LOCK
from fastmf.errors import (
    NonFiniteModelError,  # noqa: F401 - re-exported here too
    NotFittedError,
)


def first_rows(mask: np.ndarray, limit: int = 3) -> str:
    """The first few row numbers where ``mask`` is true, as text for an error message."""
    rows = np.flatnonzero(mask)[:limit]
    return ", ".join(str(int(r)) for r in rows)


def check_ratings_values(values: Any, *, column: str = "rating") -> np.ndarray:
    """Ratings as a 1-d float array with every value finite; raises naming the rows that are not."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{column} must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"{column} must be numeric, got dtype {arr.dtype}; convert it with "
            f"pd.to_numeric before fit"
        )
    if np.issubdtype(arr.dtype, np.floating) and not all_finite(arr):
        bad = ~np.isfinite(arr)
        if bad.any():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(bad.sum()) - n_nan
            raise ValueError(
                f"{column} has {n_nan} NaN and {n_inf} infinite values (first at rows "
                f"{first_rows(bad)}); drop or fill them before fit"
            )
    return arr


def all_finite(arr: np.ndarray) -> bool:
    """Whether a float array holds no NaN and no infinity: one parallel pass for a million
    float32 or float64 values and more, numpy's test below and for other floats."""
    if arr.dtype in (np.float32, np.float64) and arr.size >= SERIAL_BELOW:
        flat = np.ascontiguousarray(arr).reshape(-1).view()
        flat.flags.writeable = False  # one compiled signature, whatever the caller's array
        with KERNEL_LOCK:
            return int(count_nonfinite(flat)) == 0
    return bool(np.isfinite(arr).all())


def check_index_array(values: Any, *, name: str, upper: int | None = None) -> np.ndarray:
    """Dense indices as int32: integer dtype, non-negative and below ``upper``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    if arr.size:
        low = int(arr.min())
        if low < 0:
            raise ValueError(
                f"{name} must hold non-negative indices; found {low} at row "
                f"{first_rows(arr < 0, 1)}"
            )
        high = int(arr.max())
        limit = upper if upper is not None else np.iinfo(np.int32).max
        if high >= limit:
            raise ValueError(
                f"{name} holds index {high} at row {first_rows(arr == high, 1)}, but indices "
                f"must be below {limit}"
            )
    return arr.astype(np.int32, copy=False)


def check_same_length(**arrays: np.ndarray) -> int:
    """The common length of the named arrays; raises naming each length when they differ."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"mismatched lengths: {shown}; every column needs one value per rating")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("no ratings given: the data is empty")
    return n


def check_int(value: Any, name: str, *, low: int, high: int | None = None) -> int:
    """An integer parameter within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return number


def check_float(
    value: Any, name: str, *, low: float = 0.0, strict: bool = False, high: float | None = None
) -> float:
    """A finite real parameter above ``low`` (``strict``: strictly above) and up to ``high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {relation} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of the named string options."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)


SERVING_ATTRIBUTES = (
    "global_mean_",
    "user_bias_",
    "item_bias_",
    "user_factors_",
    "item_factors_",
    "user_ids_",
    "item_ids_",
)
"""The fitted attributes serving reads."""


def check_fitted(model: Any) -> None:
    """Raise :class:`~fastmf.errors.NotFittedError` unless ``model`` has every attribute of
    :data:`SERVING_ATTRIBUTES` (an attribute that raises AttributeError counts as missing)."""
    if any(getattr(model, name, None) is None for name in SERVING_ATTRIBUTES):
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet; call fit(ratings) before using it"
        )
