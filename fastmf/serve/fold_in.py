"""Fold-in: a user who was not in training, solved against the model's fixed item factors."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fastmf.serve.fitted import check_fitted
from fastmf.serve.lookup import item_map, lookup
from fastmf.serve.results import FoldedUser

__all__ = ["fold_in"]


def fold_in(model: Any, ratings: Any) -> FoldedUser:
    """Solve the bias and factors of a user who was not in training, with the items fixed.

    Minimizes the model's objective restricted to this user's ratings ``R``:
    ``sum (r - mu - b_u - b_i - p . q_i)^2 + reg * |R| * |p|^2 + reg_bias * |R| * b_u^2``
    (the per-rating penalties of training, counted once per rating), a ridge regression solved
    exactly. With ``biases="none"`` the user bias stays 0; with ``biases="fixed"`` it is the
    damped mean residual ``sum(r - mu - b_i) / (|R| + bias_damping)`` and only ``p`` is solved.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    ratings : DataFrame, Series or mapping
        The new user's ratings: a DataFrame with columns ``item`` and ``rating`` (a ``user``
        column, if present, must hold one user), a Series of ratings indexed by raw item id,
        or a mapping raw item id -> rating. Items the model does not know are left out (with a
        warning).

    Returns
    -------
    FoldedUser
        Accepted by :func:`recommend`, :func:`recommend_many` and :func:`similar_users`.
    """
    check_fitted(model)
    item_raw, values = _fold_in_input(ratings)
    idx = lookup(item_map(model), item_raw, model.item_ids_)
    known = idx >= 0
    n_ignored = int((~known).sum())
    if not known.any():
        raise ValueError(
            f"none of the {len(idx)} rated items are known to the model (first: "
            f"{item_raw[0]!r}); a user with no known items can only get the fallback list: "
            f"call recommend with an unknown user id"
        )
    if n_ignored:
        shown = ", ".join(repr(x) for x in item_raw[~known][:3])
        warnings.warn(
            f"fold_in: {n_ignored} of {len(idx)} rated items are unknown to the model and were "
            f"left out ({shown}{', ...' if n_ignored > 3 else ''})",
            UserWarning,
            stacklevel=2,
        )
    idx, values = idx[known], values[known]
    if np.unique(idx).shape[0] != idx.shape[0]:
        raise ValueError(
            "ratings repeat an item; give each item once (keep the latest rating of each)"
        )
    dtype = model.item_factors_.dtype
    b_u, p_u = _solve_user(model, idx, values)
    return FoldedUser(
        user_bias=float(dtype.type(b_u)),
        user_factors=np.ascontiguousarray(p_u, dtype=dtype),
        seen_items=np.sort(idx).astype(np.int32),
        n_ignored=n_ignored,
        model=model,
    )


def _fold_in_input(ratings: Any) -> tuple[np.ndarray, np.ndarray]:
    """Raw item ids (object array) and ratings (float64) of the user to fold in."""
    if isinstance(ratings, pd.DataFrame):
        missing = [c for c in ("item", "rating") if c not in ratings.columns]
        if missing:
            raise ValueError(
                f"the ratings DataFrame has no column {missing[0]!r} (its columns: "
                f"{list(ratings.columns)}); fold_in needs columns item and rating"
            )
        if "user" in ratings.columns and ratings["user"].nunique(dropna=False) > 1:
            raise ValueError(
                f"the ratings hold {ratings['user'].nunique(dropna=False)} users; fold_in solves "
                f"one user at a time: pass the rows of one user"
            )
        items, values = ratings["item"].to_numpy(), ratings["rating"].to_numpy()
    elif isinstance(ratings, pd.Series):
        items, values = ratings.index.to_numpy(), ratings.to_numpy()
    elif isinstance(ratings, Mapping):
        items, values = list(ratings.keys()), list(ratings.values())  # type: ignore[assignment]
    else:
        raise TypeError(
            f"ratings must be a DataFrame (columns item, rating), a Series indexed by item or a "
            f"dict item -> rating, got {type(ratings).__name__}"
        )
    values = np.asarray(values)
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"ratings must be numeric, got dtype {values.dtype}")
    values = values.astype(np.float64)
    if values.shape[0] == 0:
        raise ValueError("no ratings given: fold_in needs at least one rating")
    if not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(values))
        raise ValueError(
            f"ratings has {bad.shape[0]} NaN or infinite values (first at row {bad[0]}); drop "
            f"or fill them"
        )
    item_arr = np.empty(len(items), dtype=object)
    item_arr[:] = list(items)
    return item_arr, values


def _solve_user(model: Any, idx: np.ndarray, values: np.ndarray) -> tuple[float, np.ndarray]:
    """Closed-form (b_u, p_u) for ratings ``values`` of item indices ``idx`` (float64)."""
    Q = model.item_factors_[idx].astype(np.float64)
    count = idx.shape[0]
    k = Q.shape[1]
    reg = float(getattr(model, "reg", 0.0) or 0.0)
    reg_bias = float(getattr(model, "reg_bias", 0.0) or 0.0)
    biases = getattr(model, "biases", "learned")
    y = values - float(model.global_mean_) - model.item_bias_[idx].astype(np.float64)
    if biases == "learned":
        A = np.empty((count, k + 1))
        A[:, 0] = 1.0
        A[:, 1:] = Q
        G = A.T @ A
        G[0, 0] += reg_bias * count
        G[1:, 1:] += reg * count * np.eye(k)
        x = _ridge_solve(G, A.T @ y)
        return float(x[0]), x[1:]
    if biases == "fixed":
        damping = float(getattr(model, "bias_damping", 0.0) or 0.0)
        b_u = float(y.sum() / (count + damping))
    else:
        b_u = 0.0
    G = Q.T @ Q + reg * count * np.eye(k)
    p = _ridge_solve(G, Q.T @ (y - b_u))
    return b_u, p


def _ridge_solve(G: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solution of ``G x = rhs`` for a symmetric positive semi-definite G; the minimum-norm
    least-squares solution when G is singular (reg = 0 with fewer ratings than factors)."""
    try:
        x = np.linalg.solve(G, rhs)
        if np.isfinite(x).all() and np.linalg.cond(G) < 1e12:
            return x
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(G, rhs, rcond=None)[0]
