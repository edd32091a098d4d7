"""``diagnose``: read the run, apply each rule in turn, list the findings in report order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastmf.evaluate.diagnose._fit_rules import (
    diverged,
    overfitting,
    progress,
    underfitting,
    unstable,
)
from fastmf.evaluate.diagnose._reading import read_run
from fastmf.evaluate.diagnose._reg_rules import reg_dominates, reg_negligible, rising_reg_normal
from fastmf.evaluate.diagnose._report import Diagnosis, Finding
from fastmf.evaluate.diagnose._thresholds import CODES


def diagnose(
    model_or_history: Any,
    data: Any = None,
    *,
    params: Mapping[str, Any] | None = None,
) -> Diagnosis:
    """Say what a training history shows: over- or underfitting, plateau, the scale of λ.

    Parameters
    ----------
    model_or_history : MatrixFactorization or DataFrame
        A fitted model (its ``history_`` and parameters are read) or a history DataFrame with
        the columns of ``MatrixFactorization.history_`` (``val_rmse``/``val_mae`` optional).
    data : DataFrame or Ratings, optional
        The training ratings. When given, the training RMSE is compared with the bias-only
        model's (:func:`bias_baseline`) to judge whether the error is high; without it the
        gap between training and validation RMSE is used (see the module docs).
    params : mapping, optional
        Model parameters (``reg``, ``n_factors``, ``learning_rate``, ``n_epochs``,
        ``early_stopping``) to quote in the advice; taken from the model when one is given,
        and these override them.

    Returns
    -------
    Diagnosis
        Its ``findings`` (each with a ``code`` from ``CODES``, a ``message`` with the figures,
        and ``advice``); ``str(diagnosis)`` is the report.

    Examples
    --------
    >>> model = MatrixFactorization(validation_fraction=0.1).fit(ratings)  # doctest: +SKIP
    >>> print(fastmf.diagnose(model, ratings))  # doctest: +SKIP
    """
    run = read_run(model_or_history, data, params)
    broken = diverged(run)
    if broken is not None:
        return Diagnosis([broken], run.h, run.p, run.summary)
    shaky = unstable(run)
    overfit = overfitting(run)
    trend = progress(run, shaky is not None) if overfit is None else None
    if run.n < 3:
        run.summary["too_few_epochs"] = 1.0
    flat = trend is not None and trend.code == "plateau"
    findings: list[Finding | None] = [
        shaky,
        overfit,
        trend,
        underfitting(run, flat, shaky is not None),
        reg_dominates(run, overfit is not None) or reg_negligible(run, overfit is not None),
        rising_reg_normal(run),
    ]
    order = {c: k for k, c in enumerate(CODES)}
    found = sorted((f for f in findings if f is not None), key=lambda f: order[f.code])
    return Diagnosis(found, run.h, run.p, run.summary)
