"""Search over a model's parameters with k-fold or holdout validation.

``grid_search`` tries every combination of a grid, ``random_search`` a number of draws,
``auto`` spends a wall-clock budget on successive halving (``fastmf.evaluate._auto``); all
return a :class:`SearchResult` with a table of every candidate (mean and spread of the
validation RMSE and MAE, fit seconds) sorted best first, and the best model refitted on all the
data (for ``auto``, the average of its best refits: ``average_models``). Every fit runs in
this process, so the Numba kernels compile once (or load from Numba's cache) and every
candidate reuses them: a warm-up fit on a few ratings runs before the timed fits so that no
candidate's seconds include compilation. The kernels are compiled per ``dtype``; keep
``dtype`` out of the grid or each value compiles its own set.

The grid and the draws are expanded here rather than by scikit-learn's ``ParameterGrid`` and
``ParameterSampler``: the same few lines of ``itertools.product``, with errors that name the
parameter and say how to fix it, and no import of scikit-learn (a test dependency only).

Splits are over ratings, seeded by ``random_state``. A validation rating whose user or item is
absent from its training part gets the model's fallback prediction (μ plus the known bias), as
``MatrixFactorization.predict`` documents; with MovieLens-sized data such ratings are few.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fastmf._random import as_generator
from fastmf.evaluate._result import SearchResult
from fastmf.evaluate._search import search
from fastmf.evaluate.ensemble import average_models

__all__ = ["SearchResult", "auto", "average_models", "grid_search", "random_search"]


def auto(
    X: Any,
    y: Any = None,
    *,
    budget_seconds: float = 60,
    cv: float | int | Iterable[tuple[Any, Any]] | None = None,
    scoring: str = "rmse",
    random_state: int | np.random.Generator | None = None,
    verbose: int = 1,
    ensemble: int = 8,
) -> SearchResult:
    """Tune λ, η, the factors, ``reg_bias`` and the epochs within ``budget_seconds``.

    Asynchronous successive halving: candidates (the data-aware defaults first, then random
    draws) train on a validation split carved from ``X`` with early stopping; at epochs 4, 8,
    16, ... a candidate goes on only while its validation error is in the best third of those
    seen at that epoch. The default keeps the lead unless a candidate beats it by 0.2% on
    validation (less is within a split's noise).

    The search keeps up to half the budget for the end: the best candidate is refitted on all
    of ``X``, then, while the time lasts and up to ``ensemble`` models, the other candidates
    within 0.3% of it on validation, small steps around it (λ ±12.5%, ``reg_bias`` 0.05) and
    the same settings again, each with a seed of its own; ``best_estimator_`` is their
    average, one model (:func:`average_models`: biases averaged, factors side by
    side) whose predictions are the mean of theirs. When the time left covers only one refit,
    it is the best candidate fitted on all of ``X``; when it does not even cover that, the best
    candidate as it was trained (on the training part of its split; ``refit_seconds_`` 0).
    ``budget_seconds`` caps the call's wall time, compiling included (with a cold Numba cache
    the first compile alone takes tens of seconds and counts).

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n_ratings, 2)
        Ratings (``user``, ``item``, ``rating``), or raw (user, item) ids with ``y``.
    y : array-like of shape (n_ratings,), optional
    budget_seconds : float, default 60
        Wall-clock seconds for the whole call.
    cv : None, float, int or iterable of (train, validation) pairs, default None
        None: 10% of ``X``, seeded, for validation. Otherwise as in :func:`grid_search`
        (every split costs a fit per candidate).
    scoring : {"rmse", "mae"}, default "rmse"
    random_state : int or Generator, optional
        Seeds the split, the draws and the fits: the same seed and budget give the same
        candidates (how many fit in the budget depends on the machine's speed).
    verbose : int, default 1
        1 shows a progress bar over the candidates; 0 prints nothing.
    ensemble : int, default 8
        The most refits averaged into ``best_estimator_``; 1 returns the best candidate's
        refit alone (and spends the budget on the search).

    Returns
    -------
    SearchResult
        ``results_`` (one row per candidate, best first; ``params`` replays the best epoch),
        ``best_params_`` (the best candidate's), ``best_score_``, ``best_estimator_`` fitted on
        all of ``X``, ``members_`` (the parameters and seed of each model averaged into it).
        A ``fit`` of ``best_estimator_`` (or of its clone) trains one model with the summed
        ``n_factors``, not an average; refit ``best_params_`` for the best candidate alone.
    """
    from fastmf.evaluate._auto import auto_search

    return auto_search(X, y, budget_seconds, cv, scoring, random_state, verbose, ensemble)


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
    candidates = _grid_candidates(param_grid)
    return search(X, y, candidates, estimator, cv, scoring, random_state, refit, verbose)


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
    rng = as_generator(random_state)
    candidates = _drawn_candidates(param_distributions, int(n_iter), rng)
    return search(X, y, candidates, estimator, cv, scoring, rng, refit, verbose)


def _grid_candidates(param_grid: Any) -> list[dict[str, Any]]:
    """Every combination of the grid (or of each grid of a list, in turn)."""
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
            candidates.append(dict(zip(names, combo, strict=True)))
    return candidates


def _drawn_candidates(
    param_distributions: Mapping[str, Any], n_iter: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``n_iter`` draws of parameters: without replacement from the grid when every entry is a
    list, else independently per parameter (``rvs`` of a distribution, a uniform pick of a
    list)."""
    names = list(param_distributions)
    dists = {name: param_distributions[name] for name in names}
    if all(not hasattr(d, "rvs") for d in dists.values()):
        choices = [_as_choices(name, dists[name], "param_distributions") for name in names]
        grid = list(itertools.product(*choices))
        picks = rng.choice(len(grid), size=min(n_iter, len(grid)), replace=False)
        candidates = [dict(zip(names, grid[k], strict=True)) for k in picks]
    else:
        for name, d in dists.items():
            if not hasattr(d, "rvs"):
                dists[name] = _as_choices(name, d, "param_distributions")
        candidates = []
        for _ in range(n_iter):
            cand = {}
            for name, d in dists.items():
                if hasattr(d, "rvs"):
                    cand[name] = _plain(d.rvs(random_state=rng))
                else:
                    cand[name] = d[int(rng.integers(len(d)))]
            candidates.append(cand)
    return candidates


def _as_choices(name: str, values: Any, arg: str) -> list[Any]:
    """The values to try for one parameter, as plain Python values; refuses a scalar."""
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
