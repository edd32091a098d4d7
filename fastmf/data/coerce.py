"""What turns the input of ``fit``, ``predict`` and ``score`` into ratings: a Ratings container
from a DataFrame, an (n, 2) array of ids with ratings, or a sparse matrix; raw (user, item) id
pairs; and a checked validation set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastmf.data.ratings import Ratings


def to_ratings(
    X: Any, y: Any = None, *, duplicates: str = "error", ordered: bool = True
) -> Ratings:
    """A Ratings container from what ``fit`` accepts: DataFrame, (n, 2) ids with y, sparse.

    ``ordered=False`` keeps a DataFrame's or an array's rows in their order, duplicates not
    checked yet (``fastmf.train.layout.fit_ratings`` checks them while it lays them out)."""
    if isinstance(X, Ratings):
        return X
    if isinstance(X, pd.DataFrame):
        if y is not None:
            X = X.assign(rating=np.asarray(y))
        return Ratings.from_dataframe(X, duplicates=duplicates, ordered=ordered)
    if hasattr(X, "tocoo"):
        return Ratings.from_sparse(X, duplicates=duplicates)
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"X must be a ratings DataFrame (columns user, item, rating) or an array of shape "
            f"(n, 2) of raw (user, item) ids; got shape {arr.shape}"
        )
    if y is None:
        raise ValueError("X is an array of (user, item) ids: pass the ratings as y")
    return Ratings.from_arrays(arr[:, 0], arr[:, 1], y, duplicates=duplicates, ordered=ordered)


def pairs(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Raw user and item ids from a DataFrame or an (n, 2) array."""
    if isinstance(X, pd.DataFrame):
        missing = [c for c in ("user", "item") if c not in X.columns]
        if missing:
            raise ValueError(
                f"the DataFrame has no column {', '.join(map(repr, missing))} (its columns: "
                f"{list(X.columns)})"
            )
        return X["user"].to_numpy(), X["item"].to_numpy()
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"expected an array of shape (n, 2) of (user, item) ids, got {arr.shape}")
    return arr[:, 0], arr[:, 1]


def validation_frame(validation: Any) -> pd.DataFrame:
    """The validation set of ``fit`` as a ratings DataFrame: given as one, or as a tuple
    ``(X_val, y_val)``; raises when it is empty or holds a rating that is not finite."""
    if isinstance(validation, pd.DataFrame):
        if "rating" not in validation.columns:
            raise ValueError("the validation DataFrame needs a rating column")
        frame = validation
    elif isinstance(validation, tuple) and len(validation) == 2:
        u, i = pairs(validation[0])
        frame = pd.DataFrame({"user": u, "item": i, "rating": np.asarray(validation[1])})
    else:
        raise TypeError("validation must be a ratings DataFrame or a tuple (X_val, y_val)")
    if len(frame) == 0:
        raise ValueError("the validation set is empty; pass None or at least one rating")
    vals = np.asarray(frame["rating"], dtype=np.float64)
    if not np.isfinite(vals).all():
        raise ValueError("the validation ratings hold NaN or infinite values")
    return frame
