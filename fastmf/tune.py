"""Search over a model's parameters with k-fold or holdout validation.

``grid_search`` tries every combination of a grid, ``random_search`` a number of draws; both
return a :class:`SearchResult` with a table of every candidate (mean and spread of the
validation RMSE and MAE, fit seconds) sorted best first, and the best model refitted on all the
data. Every fit runs in this process, so the Numba kernels compile once (or load from Numba's
cache) and every candidate reuses them: a warm-up fit on a few ratings runs before the timed fits
so that no candidate's seconds include compilation. The kernels are compiled per ``dtype``; keep
``dtype`` out of the grid or each value compiles its own set.

Splits are over ratings, seeded by ``random_state``. A validation rating whose user or item is
absent from its training part gets the model's fallback prediction (μ plus the known bias), as
``MatrixFactorization.predict`` documents; with MovieLens-sized data such ratings are few.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SearchResult", "grid_search", "random_search"]

_SCORINGS = ("rmse", "mae")


@dataclass
class SearchResult:
    """What a search found.

    Attributes
    ----------
    results_ : DataFrame
        One row per candidate, best first: ``rank``, one column per searched parameter,
        ``mean_val_rmse``, ``std_val_rmse``, ``mean_val_mae``, ``std_val_mae``,
        ``mean_fit_seconds``, ``std_fit_seconds``, ``mean_epochs`` (epochs trained, which early
        stopping may cut), ``split<k>_val_rmse`` for each split, and ``params`` (the dict).
    best_params_ : dict
        The parameters of the best candidate (lowest mean validation error by ``scoring``).
    best_score_ : float
        Its mean validation RMSE or MAE (lower is better).
    best_estimator_ : MatrixFactorization or None
        A model with ``best_params_`` fitted on all the data; None when ``refit=False``.
    refit_seconds_ : float
        Seconds of that final fit (0.0 without refit).
    scoring : str
        ``"rmse"`` or ``"mae"``.
    n_splits : int
        Number of train/validation splits each candidate was fitted on.
    """

    results_: pd.DataFrame
    best_params_: dict[str, Any]
    best_score_: float
    best_estimator_: Any
    refit_seconds_: float
    scoring: str
    n_splits: int

    def __str__(self) -> str:
        cols = [c for c in self.results_.columns if c != "params" and not c.startswith("split")]
        table = self.results_[cols].head(10).to_string(index=False, float_format="{:.4g}".format)
        more = len(self.results_) - 10
        tail = f"\n... {more} more" if more > 0 else ""
        return (
            f"{len(self.results_)} candidate(s), {self.n_splits} split(s), scoring={self.scoring}; "
            f"best {self.scoring.upper()} {self.best_score_:.4f} with {self.best_params_}\n"
            f"{table}{tail}"
        )

    def __repr__(self) -> str:
        return (
            f"SearchResult(n_candidates={len(self.results_)}, best_score_={self.best_score_:.4f}, "
            f"best_params_={self.best_params_!r})"
        )


def grid_search(
    X: Any,
    param_grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]],
    *,
    y: Any = None,
    estimator: Any = None,
    cv: float | Iterable[tuple[Any, Any]] = 3,
    scoring: str = "rmse",
    random_state: int | np.random.Generator | None = None,
    refit: bool = True,
    verbose: int = 0,
) -> SearchResult:
    """Fit every combination of ``param_grid`` and rank them by validation error.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n_ratings, 2)
        Ratings (``user``, ``item``, ``rating``), or raw (user, item) ids with ``y``.
    param_grid : dict or list of dict
        Parameter name to the list of values to try (any parameter of the estimator:
        ``n_factors``, ``reg``, ``learning_rate``, ``n_epochs``, ...); a list of dicts searches
        each grid in turn, as in scikit-learn.
    y : array-like of shape (n_ratings,), optional
        The ratings when ``X`` is an array of ids.
    estimator : MatrixFactorization, optional
        Gives the parameters not searched; default ``MatrixFactorization()``.
    cv : int, float or iterable of (train, validation) pairs, default 3
        An int k >= 2: k-fold over the ratings. A float in (0, 1): one holdout split with that
        fraction for validation. An iterable: the given pairs, each side an array of row
        positions or a DataFrame of rows of ``X`` (``fastmf.split.kfold(X, 5)`` yields these;
        its ``unknown="drop"`` policy then carries over).
    scoring : {"rmse", "mae"}, default "rmse"
        The error that ranks candidates (both are reported).
    random_state : int or Generator, optional
        Seeds the splits; when the estimator's own ``random_state`` is None, every candidate
        also gets one seed drawn from it, so all candidates start from the same draw.
    refit : bool, default True
        Fit the best parameters on all of ``X`` (``best_estimator_``).
    verbose : int, default 0
        Print one line per candidate when > 0; from 2 on, the fits also show their own progress
        (below 2 they train with ``verbose=0``).

    Returns
    -------
    SearchResult
        ``results_`` sorted best first, ``best_params_``, ``best_score_``, ``best_estimator_``.
    """
    grids = [param_grid] if isinstance(param_grid, Mapping) else list(param_grid)
    if not grids:
        raise ValueError("param_grid is empty; give a dict such as {'reg': [0.01, 0.05]}")
    candidates: list[dict[str, Any]] = []
    for grid in grids:
        if not isinstance(grid, Mapping):
            raise TypeError(
                f"param_grid must be a dict or a list of dicts, got an element of type "
                f"{type(grid).__name__}"
            )
        names = list(grid)
        values = [_as_choices(name, grid[name], "param_grid") for name in names]
        for combo in itertools.product(*values):
            candidates.append(dict(zip(names, combo)))
    return _search(X, y, candidates, estimator, cv, scoring, random_state, refit, verbose)


def random_search(
    X: Any,
    param_distributions: Mapping[str, Any],
    n_iter: int = 10,
    *,
    y: Any = None,
    estimator: Any = None,
    cv: float | Iterable[tuple[Any, Any]] = 3,
    scoring: str = "rmse",
    random_state: int | np.random.Generator | None = None,
    refit: bool = True,
    verbose: int = 0,
) -> SearchResult:
    """Fit ``n_iter`` random draws of parameters and rank them by validation error.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n_ratings, 2)
        Ratings (``user``, ``item``, ``rating``), or raw (user, item) ids with ``y``.
    param_distributions : dict
        Parameter name to a list of values (drawn uniformly) or a distribution with an
        ``rvs(random_state=...)`` method (``scipy.stats.loguniform(1e-3, 1e-1)``). When every
        entry is a list, draws are made without replacement from their grid.
    n_iter : int, default 10
        Number of candidates.
    y, estimator, cv, scoring, random_state, refit, verbose
        As in :func:`grid_search`; ``random_state`` also seeds the draws.

    Returns
    -------
    SearchResult
        ``results_`` sorted best first, ``best_params_``, ``best_score_``, ``best_estimator_``.
    """
    if not isinstance(param_distributions, Mapping) or not param_distributions:
        raise TypeError(
            "param_distributions must be a non-empty dict of parameter name to a list or a "
            f"distribution, got {param_distributions!r}"
        )
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"n_iter must be an int >= 1, got {n_iter!r}")
    rng = np.random.default_rng(random_state)
    names = list(param_distributions)
    dists = {name: param_distributions[name] for name in names}
    if all(not hasattr(d, "rvs") for d in dists.values()):
        choices = [_as_choices(name, dists[name], "param_distributions") for name in names]
        grid = list(itertools.product(*choices))
        picks = rng.choice(len(grid), size=min(int(n_iter), len(grid)), replace=False)
        candidates = [dict(zip(names, grid[k])) for k in picks]
    else:
        for name, d in dists.items():
            if not hasattr(d, "rvs"):
                dists[name] = _as_choices(name, d, "param_distributions")
        candidates = []
        for _ in range(int(n_iter)):
            cand = {}
            for name, d in dists.items():
                if hasattr(d, "rvs"):
                    cand[name] = _plain(d.rvs(random_state=rng))
                else:
                    cand[name] = d[int(rng.integers(len(d)))]
            candidates.append(cand)
    return _search(X, y, candidates, estimator, cv, scoring, rng, refit, verbose)


# ---------------------------------------------------------------------------------------------


def _as_choices(name: str, values: Any, arg: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(
            f"{arg}[{name!r}] must be a list of values to try, got {values!r}; "
            f"write {{{name!r}: [{values!r}]}} for a single value"
        )
    out = [_plain(v) for v in values]
    if not out:
        raise ValueError(f"{arg}[{name!r}] is empty; give at least one value")
    return out


def _plain(v: Any) -> Any:
    """numpy scalars to Python ones, so estimators that check ``int`` accept them."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _split_indices(
    n: int, cv: Any, rng: np.random.Generator, index: pd.Index | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/validation index pairs over ``n`` ratings, each part sorted.

    ``index`` (the ratings DataFrame's) turns (train, validation) DataFrame pairs, as
    ``fastmf.split.kfold`` yields them, into positions.
    """
    if isinstance(cv, bool):
        raise TypeError(f"cv must be an int, a float or index pairs, got {cv!r}")
    if isinstance(cv, (int, np.integer)):
        if cv < 2 or cv > n:
            raise ValueError(
                f"cv={cv} folds is out of range for {n} ratings; use 2 <= cv <= n_ratings, "
                "or a float in (0, 1) for one holdout split"
            )
        folds = np.array_split(rng.permutation(n), int(cv))
        out = []
        for k, fold in enumerate(folds):
            train = np.concatenate([f for j, f in enumerate(folds) if j != k])
            out.append((np.sort(train), np.sort(fold)))
        return out
    if isinstance(cv, (float, np.floating)):
        if not 0.0 < cv < 1.0:
            raise ValueError(
                f"cv={cv} as a holdout fraction must be in (0, 1), for example 0.1; "
                "use an int >= 2 for k-fold"
            )
        n_val = round(cv * n)
        if n_val < 1 or n_val >= n:
            raise ValueError(
                f"cv={cv} leaves {n_val} of {n} ratings for validation; choose a fraction that "
                "leaves both parts non-empty"
            )
        perm = rng.permutation(n)
        return [(np.sort(perm[n_val:]), np.sort(perm[:n_val]))]
    if isinstance(cv, (str, bytes)) or not isinstance(cv, Iterable):
        raise TypeError(
            "cv must be an int (k-fold), a float (holdout fraction) or an iterable of "
            f"(train, validation) pairs, got {type(cv).__name__}"
        )
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


def _prepare(X: Any, y: Any) -> tuple[Callable[[np.ndarray], tuple[Any, Any]], np.ndarray, int]:
    """A function giving fit's arguments for some rows, all the ratings, and their count."""
    if isinstance(X, pd.DataFrame):
        if y is not None:
            raise ValueError("y must be None when X is a ratings DataFrame (it holds 'rating')")
        if "rating" not in X.columns:
            raise ValueError(
                f"X lacks the column 'rating'; pass a DataFrame with user, item, rating "
                f"(got {list(X.columns)})"
            )
        r = np.asarray(X["rating"], dtype=np.float64)
        return (lambda idx: (X.iloc[idx], None)), r, len(X)
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"X must be a ratings DataFrame or an (n, 2) array of user and item ids, got shape "
            f"{arr.shape}"
        )
    if y is None:
        raise ValueError("y (the ratings) is required when X is an array of ids")
    r = np.asarray(y, dtype=np.float64)
    if r.shape != (arr.shape[0],):
        raise ValueError(f"y has shape {r.shape}; expected ({arr.shape[0]},) to match X")
    return (lambda idx: (arr[idx], r[idx])), r, arr.shape[0]


def _new_estimator(estimator: Any, params: Mapping[str, Any]) -> Any:
    base = dict(estimator.get_params())
    base.update(params)
    return type(estimator)(**base)


def _search(
    X: Any,
    y: Any,
    candidates: list[dict[str, Any]],
    estimator: Any,
    cv: Any,
    scoring: str,
    random_state: Any,
    refit: bool,
    verbose: int,
) -> SearchResult:
    if scoring not in _SCORINGS:
        raise ValueError(f"scoring={scoring!r} is not known; use one of {_SCORINGS}")
    if estimator is None:
        from fastmf.model import MatrixFactorization

        estimator = MatrixFactorization()
    known = set(estimator.get_params())
    for cand in candidates:
        unknown = sorted(set(cand) - known)
        if unknown:
            raise ValueError(
                f"{unknown} is not a parameter of {type(estimator).__name__}; "
                f"the parameters are {sorted(known)}"
            )
    rng = np.random.default_rng(random_state)
    take, ratings, n = _prepare(X, y)
    splits = _split_indices(n, cv, rng, X.index if isinstance(X, pd.DataFrame) else None)
    seed = None
    if estimator.get_params().get("random_state", 0) is None:
        seed = int(rng.integers(2**31 - 1))
    fixed = {"random_state": seed} if seed is not None else {}
    # Candidates train quietly (no progress bar per fit) unless verbose >= 2 asks for them.
    quiet = {"verbose": 0} if "verbose" in known and verbose < 2 else {}

    # Compile (or load from the cache) every kernel the candidates need before any timing.
    warmed: set[tuple[Any, ...]] = set()
    warm_idx = np.arange(min(n, 2000))
    for cand in candidates:
        key = tuple(sorted((k, v) for k, v in cand.items() if not isinstance(v, (int, float))))
        if key in warmed:
            continue
        warmed.add(key)
        model = _new_estimator(estimator, {**cand, **fixed, **quiet, "n_epochs": 1})
        # A warm-up only: whatever fails here fails again in the timed fit, which raises it.
        with contextlib.suppress(Exception):
            model.fit(*take(warm_idx)).predict(take(warm_idx[:10])[0])

    rows = []
    for c, cand in enumerate(candidates):
        params = {**cand, **fixed, **quiet}
        rmses, maes, secs, epochs = [], [], [], []
        for tr, va in splits:
            model = _new_estimator(estimator, params)
            t0 = time.perf_counter()
            model.fit(*take(tr))
            secs.append(time.perf_counter() - t0)
            xv, _ = take(va)
            err = np.asarray(model.predict(xv), dtype=np.float64) - ratings[va]
            rmses.append(math.sqrt(float(np.mean(err**2))))
            maes.append(float(np.mean(np.abs(err))))
            epochs.append(float(getattr(model, "n_epochs_done_", np.nan)))
        row: dict[str, Any] = dict(cand)
        row.update(
            mean_val_rmse=float(np.mean(rmses)),
            std_val_rmse=float(np.std(rmses)),
            mean_val_mae=float(np.mean(maes)),
            std_val_mae=float(np.std(maes)),
            mean_fit_seconds=float(np.mean(secs)),
            std_fit_seconds=float(np.std(secs)),
            mean_epochs=float(np.mean(epochs)),
        )
        for k, v in enumerate(rmses):
            row[f"split{k}_val_rmse"] = v
        row["params"] = dict(cand)
        rows.append(row)
        if verbose > 0:
            print(
                f"[{c + 1}/{len(candidates)}] {cand}: val RMSE {row['mean_val_rmse']:.4f} "
                f"± {row['std_val_rmse']:.4f}, MAE {row['mean_val_mae']:.4f}, "
                f"{row['mean_fit_seconds']:.2f} s a fit",
                flush=True,
            )

    table = pd.DataFrame(rows)
    key = f"mean_val_{scoring}"
    table = table.sort_values(key, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    best_params = dict(table.loc[0, "params"])
    best = None
    refit_seconds = 0.0
    if refit:
        best = _new_estimator(estimator, {**best_params, **fixed, **quiet})
        t0 = time.perf_counter()
        best.fit(*take(np.arange(n)))
        refit_seconds = time.perf_counter() - t0
        if quiet:
            best.set_params(verbose=estimator.get_params()["verbose"])
    return SearchResult(
        results_=table,
        best_params_=best_params,
        best_score_=float(table.loc[0, key]),
        best_estimator_=best,
        refit_seconds_=refit_seconds,
        scoring=scoring,
        n_splits=len(splits),
    )
