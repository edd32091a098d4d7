"""What a search found: every candidate's validation errors, and the best one refitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


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
        A model with ``best_params_`` fitted on all the data; None when ``refit=False``. From
        ``tune.auto``, the average of the refits in ``members_`` (one model whose
        ``n_factors`` is the sum of theirs; see :func:`fastmf.tune.average_models`).
    refit_seconds_ : float
        Seconds of the final fits (0.0 without refit).
    scoring : str
        ``"rmse"`` or ``"mae"``.
    n_splits : int
        Number of train/validation splits each candidate was fitted on.
    members_ : list of dict
        ``tune.auto``: the parameters, ``random_state`` and ``refit_seconds`` of each model
        averaged into ``best_estimator_``, the best first (one entry when it is a single fit);
        empty from ``grid_search`` and ``random_search``, whose ``best_estimator_`` is one fit
        of ``best_params_``.
    """

    results_: pd.DataFrame
    best_params_: dict[str, Any]
    best_score_: float
    best_estimator_: Any
    refit_seconds_: float
    scoring: str
    n_splits: int
    members_: list[dict[str, Any]] = field(default_factory=list)

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
