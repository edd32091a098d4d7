"""The end of ``tune.auto``: the best candidates refitted on all of X, averaged into one model.

The members, in order: the leader (the best candidate, or the data-aware default when no
candidate beats it by the tie margin); the other candidates within ``NEAR`` of it on validation
(run on every split, not cut), best first; small steps around the leader (λ an eighth down and
up, ``reg_bias`` 0.05); then the same settings again. Every member has a seed of its own. Each
is refitted only when its estimated time fits before the deadline; a refit the deadline cut
short is left out (but for the first, which is kept as it is). The members are averaged with
:func:`fastmf.evaluate.ensemble.average_models`: one biased MF model whose predictions are
their mean. Averaged distinct settings measured better than the leader with other seeds
(benchmarks/README.md, "The average of the best refits").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fastmf.evaluate.ensemble import average_models

ENSEMBLE = 8  # the most refits averaged by default
NEAR = 0.003  # relative validation margin within which another setting joins the average
SHARE = 0.5  # the most of the budget kept for the refits when averaging


Member = tuple[int, dict, int]  # the row whose pace it has, its parameters, its seed


def members(rows: list[dict], lead: int, seed: int, cap: int) -> list[Member]:
    """Up to ``cap`` (row index, parameters, seed) to refit, in order (see the module)."""
    leader = rows[lead]
    out: list[Member] = [(lead, dict(leader["params"]), seed)]
    limit = leader["mean_val_rmse"] * (1 + NEAR)
    full = max(r["splits_run"] for r in rows)
    near = sorted(
        (i for i, r in enumerate(rows)
         if i != lead and r["splits_run"] == full and not r["stopped"]
         and math.isfinite(r["mean_val_rmse"]) and r["mean_val_rmse"] <= limit),
        key=lambda i: rows[i]["mean_val_rmse"],
    )  # fmt: skip
    out += [(i, dict(rows[i]["params"]), seed) for i in near]
    out += [(lead, {**leader["params"], **step}, seed) for step in neighbors(leader["params"])]
    # then the same settings again; every member has a seed of its own
    settings = [out[j % len(out)] for j in range(cap)]
    return [(i, p, seed + j) for j, (i, p, _) in enumerate(settings)]


def neighbors(p: dict) -> list[dict]:
    """Small steps around the leader's parameters: λ an eighth down and up, the biases
    penalized (or not, when they are)."""
    return [
        {"reg": p["reg"] * 0.875},
        {"reg": p["reg"] * 1.125},
        {"reg_bias": 0.05 if p["reg_bias"] == 0 else 0.0},
    ]


def cost(params: dict) -> float:
    """The relative time of a fit of ``params``: epochs times factors."""
    return float(params["n_epochs"]) * float(params["n_factors"])


def planned(estimate: float, budget: float, cap: int) -> int:
    """How many refits of ``estimate`` seconds the search keeps time for (at least one)."""
    if cap <= 1 or estimate <= 0:
        return 1
    return max(1, min(cap, int(SHARE * budget // estimate)))


def refit_members(
    cls: Any,
    plan: list[Member],
    estimates: list[float],
    fixed: dict[str, Any],
    everything: Any,
    deadline: float,
    clock: Callable[[], float],
    safety: float,
    first: tuple[Any, dict[str, Any]] | None = None,
) -> tuple[Any, list[dict[str, Any]], float]:
    """Refit the plan's members while their estimates fit before the deadline; the average
    of those refitted (after ``first``, a member fitted already, and its record), the members'
    records and the seconds spent."""
    t0 = clock()
    models: list[Any] = [] if first is None else [first[0]]
    records: list[dict[str, Any]] = [] if first is None else [first[1]]
    scale = 1.0  # the estimates, corrected by the pace of the refits so far
    for (_, params, seed), estimate in zip(plan, estimates, strict=True):
        if models and clock() + scale * estimate >= deadline:
            break
        model, seconds = refit(cls, params, {**fixed, "random_state": seed}, everything,
                               deadline, clock, safety)  # fmt: skip
        if models and model.n_epochs_done_ < model.n_epochs_:  # cut short by the deadline
            break
        if model.n_epochs_done_ == model.n_epochs_ and estimate > 0:
            scale = safety * seconds / estimate
        models.append(model)
        records.append({**params, "random_state": seed, "refit_seconds": seconds})
    best = models[0] if len(models) == 1 else average_models(models)
    return best, records, clock() - t0


def refit(
    cls: Any, params: dict[str, Any], fixed: dict[str, Any], everything: Any, deadline: float,
    clock: Callable[[], float], safety: float,
) -> tuple[Any, float]:  # fmt: skip
    """The parameters fitted on all of X, stopped at the deadline if it comes first (when one
    more epoch, at the pace so far times ``safety``, would pass it)."""
    t0 = clock()

    def stop_at_deadline(model: Any, row: dict) -> bool:
        return clock() + safety * (clock() - t0) / int(row["epoch"]) >= deadline

    model = cls(**{**params, **fixed, "callbacks": [stop_at_deadline]})
    model.fit(everything)
    model.set_params(callbacks=None, verbose=1)
    return model, clock() - t0


def check_ensemble(ensemble: Any) -> int:
    """The cap on the members, checked."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, (int, np.integer)):
        raise TypeError(
            f"ensemble must be an int, the most refits averaged, got {ensemble!r}; "
            f"use ensemble=1 for the best candidate's refit alone"
        )
    if ensemble < 1:
        raise ValueError(f"ensemble must be >= 1 (1: no average), got {ensemble!r}")
    return int(ensemble)


def resolved(model: Any) -> dict[str, Any]:
    """The searched parameters at the values a fit of the defaults resolved."""
    return {
        "reg": float(model.reg_),
        "learning_rate": float(model.learning_rate_),
        "n_factors": int(model.n_factors_),
        "reg_bias": float(model.reg_bias),
        "n_epochs": int(model.n_epochs_),
    }
