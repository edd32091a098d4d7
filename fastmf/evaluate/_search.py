"""The search loop: check the candidates, warm the kernels up, fit and score every candidate on
every split, rank them, refit the best."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fastmf._random import as_generator
from fastmf._stats import mae, rmse
from fastmf.evaluate._cv import Take, prepare, split_indices
from fastmf.evaluate._result import SearchResult

SCORINGS = ("rmse", "mae")


def search(
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
    """Fit every candidate on every split of ``X`` and rank them by mean validation error."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring={scoring!r} is not known; use one of {SCORINGS}")
    if estimator is None:
        from fastmf.train.estimator import MatrixFactorization

        estimator = MatrixFactorization()
    base = estimator.get_params()
    _check_candidates(candidates, estimator)
    rng = as_generator(random_state)
    take, ratings, n = prepare(X, y, base.get("duplicates", "error"))
    splits = split_indices(n, cv, rng, X.index if isinstance(X, pd.DataFrame) else None)
    seed = None
    if base.get("random_state", 0) is None:
        seed = int(rng.integers(2**31 - 1))
    fixed = {"random_state": seed} if seed is not None else {}
    # Candidates train quietly (no progress bar per fit) unless verbose >= 2 asks for them.
    quiet = {"verbose": 0} if "verbose" in base and verbose < 2 else {}
    _warm_up(estimator, candidates, {**fixed, **quiet}, take, n)

    rows = []
    for c, cand in enumerate(candidates):
        row = _score(estimator, cand, {**fixed, **quiet}, take, ratings, splits)
        rows.append(row)
        if verbose > 0:
            print(
                f"[{c + 1}/{len(candidates)}] {cand}: val RMSE {row['mean_val_rmse']:.4f} "
                f"± {row['std_val_rmse']:.4f}, MAE {row['mean_val_mae']:.4f}, "
                f"{row['mean_fit_seconds']:.2f} s a fit",
                flush=True,
            )
    table = _ranked(rows, scoring)
    best_params: dict[str, Any] = dict(table.loc[0, "params"])  # type: ignore[arg-type]
    best, refit_seconds = None, 0.0
    if refit:
        best = new_estimator(estimator, {**best_params, **fixed, **quiet})
        t0 = time.perf_counter()
        best.fit(*take(np.arange(n)))
        refit_seconds = time.perf_counter() - t0
        if quiet:
            best.set_params(verbose=base["verbose"])
    return SearchResult(
        results_=table,
        best_params_=best_params,
        best_score_=float(table.loc[0, f"mean_val_{scoring}"]),  # type: ignore[arg-type]
        best_estimator_=best,
        refit_seconds_=refit_seconds,
        scoring=scoring,
        n_splits=len(splits),
    )


def new_estimator(estimator: Any, params: Mapping[str, Any]) -> Any:
    """A fresh estimator of the same type with the given parameters over its own."""
    base = dict(estimator.get_params())
    base.update(params)
    return type(estimator)(**base)


def _check_candidates(candidates: list[dict[str, Any]], estimator: Any) -> None:
    """Refuse a candidate naming a parameter the estimator does not have."""
    known = set(estimator.get_params())
    for cand in candidates:
        unknown = sorted(set(cand) - known)
        if unknown:
            raise ValueError(
                f"{unknown} is not a parameter of {type(estimator).__name__}; "
                f"the parameters are {sorted(known)}"
            )


def _warm_up(
    estimator: Any, candidates: list[dict[str, Any]], extra: dict[str, Any], take: Take, n: int
) -> None:
    """Compile (or load from the cache) every kernel the candidates need before any timing.

    One short fit per distinct set of non-numeric values; numbers do not change the kernels.
    """
    warmed: set[tuple[Any, ...]] = set()
    warm_idx = np.arange(min(n, 2000))
    for cand in candidates:
        key = tuple(sorted((k, v) for k, v in cand.items() if not isinstance(v, (int, float))))
        if key in warmed:
            continue
        warmed.add(key)
        model = new_estimator(estimator, {**cand, **extra, "n_epochs": 1})
        # A warm-up only: whatever fails here fails again in the timed fit, which raises it.
        with contextlib.suppress(Exception):
            model.fit(*take(warm_idx)).predict(take(warm_idx[:10])[0])


def _score(
    estimator: Any,
    cand: dict[str, Any],
    extra: dict[str, Any],
    take: Take,
    ratings: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """One candidate's row of the table: its errors and fit times over the splits."""
    rmses, maes, secs, epochs = [], [], [], []
    for tr, va in splits:
        model = new_estimator(estimator, {**cand, **extra})
        t0 = time.perf_counter()
        model.fit(*take(tr))
        secs.append(time.perf_counter() - t0)
        xv, _ = take(va)
        pred = np.asarray(model.predict(xv), dtype=np.float64)
        rmses.append(rmse(ratings[va], pred))
        maes.append(mae(ratings[va], pred))
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
    return row


def _ranked(rows: list[dict[str, Any]], scoring: str) -> pd.DataFrame:
    """The table of candidates, best first, with a ``rank`` column."""
    table = pd.DataFrame(rows)
    table = table.sort_values(f"mean_val_{scoring}", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table
