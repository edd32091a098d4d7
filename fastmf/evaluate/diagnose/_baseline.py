"""The reference models a training error is judged against: the mean and the biases alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastmf._biases import damped_biases
from fastmf._stats import root_mean_square


def bias_baseline(data: Any, *, damping: float = 5.0, n_sweeps: int = 5) -> tuple[float, float]:
    """The RMSE of two reference models on the ratings: the global mean and the biases alone.

    Used by :func:`diagnose` to judge whether a training error is "high". The bias-only model
    ``μ + b_u + b_i`` is fitted by alternating damped means,
    ``b_i = Σ(r − μ − b_u) / (n_i + damping)`` then ``b_u`` likewise, ``n_sweeps`` times; each
    sweep is two ``bincount`` passes, so ML-25M takes a few seconds. Both RMSEs are in-sample
    (on ``data`` itself), which is what a model's ``train_rmse`` is compared with.

    Parameters
    ----------
    data : DataFrame or Ratings
        Ratings with columns ``user``, ``item``, ``rating`` (a DataFrame) or a
        ``fastmf.Ratings`` (``users``, ``items``, ``values``).
    damping : float, default 5.0
        Shrinks the bias of a user or item with few ratings toward zero.
    n_sweeps : int, default 5
        Alternating passes over items then users.

    Returns
    -------
    rating_std : float
        The RMSE of predicting the mean rating for every pair (the ratings' standard deviation).
    bias_rmse : float
        The RMSE of the bias-only model.
    """
    if isinstance(data, pd.DataFrame):
        missing = [c for c in ("user", "item", "rating") if c not in data.columns]
        if missing:
            raise ValueError(
                f"data lacks the column(s) {missing}; pass the training ratings with columns "
                f"user, item, rating (got {list(data.columns)})"
            )
        users = pd.factorize(data["user"])[0]
        items = pd.factorize(data["item"])[0]
        r = np.asarray(data["rating"], dtype=np.float64)
    elif all(hasattr(data, a) for a in ("users", "items", "values")):
        users = np.asarray(data.users, dtype=np.int64)
        items = np.asarray(data.items, dtype=np.int64)
        r = np.asarray(data.values, dtype=np.float64)
    else:
        raise TypeError(
            "data must be a ratings DataFrame (user, item, rating) or a fastmf.Ratings, "
            f"got {type(data).__name__}"
        )
    if len(r) == 0:
        raise ValueError("data is empty: pass the ratings the model was trained on")
    if not np.all(np.isfinite(r)):
        raise ValueError("data has NaN or infinite ratings; drop them before diagnosing")
    mu = r.mean()
    resid = r - mu
    b_u, b_i = damped_biases(users, items, r, mu, damping, n_sweeps)
    return root_mean_square(resid), root_mean_square(resid - b_u[users] - b_i[items])
