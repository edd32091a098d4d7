"""The train/validation splits of a search, and the rows of the data each fit gets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from fastmf.data.coerce import to_ratings
from fastmf.data.split import kfold

Take = Callable[[np.ndarray], tuple[Any, Any]]


def split_indices(
    n: int, cv: Any, rng: np.random.Generator, index: pd.Index | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/validation index pairs over ``n`` ratings, each part sorted.

    An int is k-fold (``fastmf.split.kfold``), a float one holdout split of that fraction, an
    iterable the given pairs; ``index`` (the ratings DataFrame's) turns (train, validation)
    DataFrame pairs, as ``fastmf.split.kfold`` yields them, into positions.
    """
    if isinstance(cv, bool):
        raise TypeError(f"cv must be an int, a float or index pairs, got {cv!r}")
    if isinstance(cv, (int, np.integer)):
        if cv < 2 or cv > n:
            raise ValueError(
                f"cv={cv} folds is out of range for {n} ratings; use 2 <= cv <= n_ratings, "
                "or a float in (0, 1) for one holdout split"
            )
        return _kfold_positions(n, int(cv), rng)
    if isinstance(cv, (float, np.floating)):
        return [_holdout(n, float(cv), rng)]
    if isinstance(cv, (str, bytes)) or not isinstance(cv, Iterable):
        raise TypeError(
            "cv must be an int (k-fold), a float (holdout fraction) or an iterable of "
            f"(train, validation) pairs, got {type(cv).__name__}"
        )
    return _given_pairs(n, cv, index)


def _kfold_positions(n: int, n_splits: int, rng: np.random.Generator) -> list[tuple[Any, Any]]:
    """``fastmf.split.kfold`` over ``n`` rows, as sorted (train, validation) positions."""
    rows = pd.DataFrame({"user": np.zeros(n, np.int8), "item": np.zeros(n, np.int8)})
    return [
        (train.index.to_numpy(np.int64), val.index.to_numpy(np.int64))
        for train, val in kfold(rows, n_splits, rng)
    ]


def _holdout(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One split with ``round(fraction * n)`` ratings, drawn at random, for validation."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"cv={fraction} as a holdout fraction must be in (0, 1), for example 0.1; "
            "use an int >= 2 for k-fold"
        )
    n_val = round(fraction * n)
    if n_val < 1 or n_val >= n:
        raise ValueError(
            f"cv={fraction} leaves {n_val} of {n} ratings for validation; choose a fraction "
            "that leaves both parts non-empty"
        )
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _given_pairs(
    n: int, cv: Iterable[Any], index: pd.Index | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The caller's (train, validation) pairs as positions, each checked against ``n``."""
    pairs = []
    for k, pair in enumerate(cv):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"cv split {k} is not a (train, validation) pair")
        pairs.append((_positions(pair[0], index), _positions(pair[1], index)))
    if not pairs:
        raise ValueError("cv gave no (train_idx, val_idx) pairs")
    for k, (tr, va) in enumerate(pairs):
        for part, idx in (("train", tr), ("validation", va)):
            if idx.ndim != 1 or len(idx) == 0 or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(
                    f"cv split {k}: the {part} indices must be a non-empty 1-d integer array"
                )
            if idx.min() < 0 or idx.max() >= n:
                raise ValueError(
                    f"cv split {k}: {part} index {int(idx.max())} out of range for {n} ratings"
                )
    return pairs


def _positions(part: Any, index: pd.Index | None) -> np.ndarray:
    """Row positions of one side of a split: integer positions, or a DataFrame of X's rows."""
    if not isinstance(part, pd.DataFrame):
        return np.asarray(part)
    if index is None or not index.is_unique:
        raise ValueError(
            "cv pairs of DataFrames (as fastmf.split yields) need X to be a ratings DataFrame "
            "with a unique index; split X itself, or pass integer positions"
        )
    pos = index.get_indexer(part.index)
    if (pos < 0).any():
        raise ValueError(
            "cv holds rows whose index is not in X (from fastmf.split of another DataFrame?); "
            "split X itself"
        )
    return pos.astype(np.int64)


def prepare(X: Any, y: Any, duplicates: str) -> tuple[Take, np.ndarray, int]:
    """A function giving fit's arguments for some rows, all the ratings, and their count.

    The data is checked once, by the estimator's own rule (``fastmf.model.to_ratings`` with
    its ``duplicates`` policy), so that bad input fails before any fit.
    """
    if isinstance(X, pd.DataFrame) and y is not None:
        raise ValueError("y must be None when X is a ratings DataFrame (it holds 'rating')")
    if not isinstance(X, pd.DataFrame) and y is None:
        raise ValueError("y (the ratings) is required when X is an array of ids")
    to_ratings(X, y, duplicates=duplicates)
    if isinstance(X, pd.DataFrame):
        r = np.asarray(X["rating"], dtype=np.float64)
        return (lambda idx: (X.iloc[idx], None)), r, len(X)
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"X must be a ratings DataFrame or an (n, 2) array of user and item ids, got shape "
            f"{arr.shape}"
        )
    r = np.asarray(y, dtype=np.float64)
    return (lambda idx: (arr[idx], r[idx])), r, arr.shape[0]
