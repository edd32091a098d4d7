"""``tune.auto``: a search that spends a wall-clock budget well.

Asynchronous successive halving (ASHA, Li et al. 2020) over λ, η, the factors, ``reg_bias`` and
the schedule's length: candidates train one after another on a validation split carved from X,
and at each rung (epochs 4, 8, 16, 32, ...) a candidate goes on only while its validation RMSE is
in the best third of those recorded at that rung; early stopping keeps each candidate's best
epoch. The first candidate is the data-aware default, so the search never returns worse on its
validation split. Every fit runs in this process (the compiled kernels are reused) and gets the
same ``Ratings`` per split (its ids are mapped once). Time is checked between epochs: no fit
runs past the deadline, and the refits of the best candidates on all of X (averaged into one
model: ``fastmf.evaluate._refits``) are sized to fit in what is left. When the first
candidate's first epochs show that its schedule and its refit would not fit in the budget,
there is no search: the defaults are fitted on all of X instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastmf._random import as_generator
from fastmf._stats import mae, rmse
from fastmf.errors import NonFiniteModelError
from fastmf.evaluate._cv import prepare, split_indices
from fastmf.evaluate._refits import (
    ENSEMBLE,
    check_ensemble,
    cost,
    members,
    planned,
    refit,
    refit_members,
    resolved,
)
from fastmf.evaluate._result import SearchResult
from fastmf.evaluate._search import SCORINGS

clock = time.perf_counter  # the wall clock the budget is measured on (tests replace it)
RUNGS = (4, 8, 16, 32, 64)
KEEP = 1 / 3  # the share of a rung's candidates that go on
SCHEDULES = (20, 40, 80)  # lengths of the "auto" schedule a candidate trains with
FACTORS = (32, 64, 128, 256)
SEARCHED = ("reg", "learning_rate", "n_factors", "reg_bias", "n_epochs")
VALIDATION = 0.1  # share of X held out when cv is None
SAFETY = 1.3  # the refit's time estimate is multiplied by this
TIE = 0.002  # relative validation gain a candidate needs to displace the data-aware default
MARGIN = 0.03  # share of the budget kept for the work around the fits
# early stopping keeps each candidate's best epoch; a decaying rate often improves the error again
# after a flat stretch, so the patience is long (the rungs prune the poor candidates)
PATIENCE = 8
PROBE = 2  # epochs of the first candidate after which the pace is known


@dataclass
class Rungs:
    """The validation errors recorded at each rung, across candidates (per split)."""

    ratio: float = 1.0  # ratings of all of X over those of a training part
    reserve: float = 0.0  # seconds kept for refitting the best candidate so far
    probe: bool = True  # the first candidate's first epochs measure whether a search fits
    no_search: bool = False  # the budget cannot hold the defaults' schedule and their refit
    scores: dict[tuple[int, int], list[float]] = field(default_factory=dict)

    def out_of_time(self, elapsed: float, epochs: int, deadline: float) -> bool:
        """Whether a fit that ran ``epochs`` epochs in ``elapsed`` seconds must stop so that
        its next epoch and its refit, or the best one's, still fit before the deadline."""
        own = SAFETY * elapsed * self.ratio
        return clock() + elapsed / max(epochs, 1) + max(own, self.reserve) >= deadline

    def too_short(
        self, elapsed: float, epoch: int, planned: int, splits: int, deadline: float
    ) -> bool:
        """Whether, at the pace of the first candidate's first ``epoch`` epochs, the rest of
        its schedule on every split and its refit on all of X would pass the deadline: then
        the budget is better spent on fitting the defaults on all of X."""
        per_epoch = elapsed / max(epoch, 1)
        rest = per_epoch * (planned - epoch + (splits - 1) * planned)
        return clock() + rest + SAFETY * per_epoch * planned * self.ratio >= deadline

    def keep_going(self, split: int, epoch: int, score: float) -> bool:
        """Record ``score`` at a rung epoch and say whether it is in the best share so far."""
        if epoch not in RUNGS:
            return True
        seen = self.scores.setdefault((split, epoch), [])
        seen.append(score)
        if len(seen) < 3:
            return True
        return score <= float(np.quantile(seen, KEEP))


def draw(rng: np.random.Generator, leader: dict[str, Any] | None = None) -> dict[str, Any]:
    """One candidate: from the whole space (log-uniform rates, a choice of factors), or with a
    ``leader`` (the best parameters so far) a step around it in log space."""
    if leader is None:
        return {
            "reg": float(np.exp(rng.uniform(np.log(0.01), np.log(0.2)))),
            "learning_rate": float(np.exp(rng.uniform(np.log(0.005), np.log(0.08)))),
            "n_factors": int(rng.choice(FACTORS)),
            "reg_bias": float(rng.choice([0.0, np.exp(rng.uniform(np.log(1e-3), np.log(0.1)))])),
            "n_epochs": int(rng.choice(SCHEDULES)),
        }
    k = FACTORS.index(leader["n_factors"]) if leader["n_factors"] in FACTORS else 1
    k = int(np.clip(k + rng.integers(-1, 2), 0, len(FACTORS) - 1))
    bias = leader["reg_bias"]
    return {
        "reg": float(np.clip(leader["reg"] * np.exp(rng.normal(0, 0.3)), 1e-3, 1.0)),
        "learning_rate": float(
            np.clip(leader["learning_rate"] * np.exp(rng.normal(0, 0.3)), 1e-3, 0.2)
        ),
        "n_factors": FACTORS[k],
        "reg_bias": float(rng.choice([bias, 0.0, np.exp(rng.uniform(np.log(1e-3), np.log(0.1)))])),
        "n_epochs": int(rng.choice(SCHEDULES)),
    }


def auto_search(
    X: Any,
    y: Any,
    budget_seconds: float,
    cv: Any,
    scoring: str,
    random_state: Any,
    verbose: int,
    ensemble: int = ENSEMBLE,
) -> SearchResult:
    """The search behind ``fastmf.tune.auto`` (see there)."""
    start = clock()
    budget = _check_budget(budget_seconds)
    cap = check_ensemble(ensemble)
    deadline = start + budget
    if scoring not in SCORINGS:
        raise ValueError(f"scoring={scoring!r} is not known; use one of {SCORINGS}")
    from fastmf.data.coerce import to_ratings, validation_frame
    from fastmf.train.estimator import MatrixFactorization

    rng = as_generator(random_state)
    take, ratings, n = prepare(X, y, "error")
    splits = split_indices(n, VALIDATION if cv is None else cv, rng,
                           X.index if isinstance(X, pd.DataFrame) else None)  # fmt: skip
    seed = int(rng.integers(2**31 - 1))
    parts = [(to_ratings(*take(tr)), validation_frame((take(va)[0], ratings[va])), ratings[va])
             for tr, va in splits]  # fmt: skip
    everything = to_ratings(*take(np.arange(n)))
    fixed = {"random_state": seed, "verbose": 0, "n_jobs": -1}
    rungs = Rungs(ratio=len(everything) / len(parts[0][0]))
    rows: list[dict[str, Any]] = []
    bar = _bar(verbose)
    cand: dict[str, Any] = {}  # the first candidate: the data-aware defaults
    models: dict[int, Any] = {}  # the models of the first candidate and of the leader
    try:
        while True:
            row, model = _run(MatrixFactorization, cand, fixed, parts, rungs, deadline, scoring)
            rows.append(row)
            if rungs.no_search:
                break
            models[len(rows) - 1] = model
            lead = rows.index(_leader(rows))
            models = {i: m for i, m in models.items() if i in (0, lead)}
            _tick(bar, rows, scoring)
            # the refits of the best ones, and a margin for what runs around the fits
            one = _refit_estimate(_leader(rows), rungs.ratio)
            rungs.reserve = one * planned(one, budget, cap) + MARGIN * budget
            if deadline - clock() < rungs.reserve + 0.5 * min(r["mean_fit_seconds"] for r in rows):
                break
            # every other candidate explores the whole space; the others step around the best
            leader = _leader(rows)
            local = len(rows) % 2 == 0
            cand = draw(
                rng, {**leader["params"], "n_epochs": leader["schedule"]} if local else None
            )
    finally:
        if bar is not None:
            bar.close()
    table = _ranked(rows, scoring, len(parts))
    best, best_params, lead, chosen, refit_seconds = _returned(
        MatrixFactorization, rows, models, rungs, (fixed, everything, deadline), cap
    )
    return SearchResult(
        results_=table,
        best_params_=best_params,
        best_score_=float(rows[lead][f"mean_val_{scoring}"]),
        best_estimator_=best,
        refit_seconds_=refit_seconds,
        scoring=scoring,
        n_splits=len(parts),
        members_=chosen,
    )


def _returned(
    cls: Any, rows: list[dict], models: dict[int, Any], rungs: Rungs, fit: tuple, cap: int
) -> tuple[Any, dict[str, Any], int, list[dict[str, Any]], float]:
    """The model to return (``fit``: the fixed parameters, all of X, the deadline), the best
    parameters, the leader's row, the members' records and the seconds of the refits."""
    fixed, everything, deadline = fit
    seed = fixed["random_state"]
    lead = rows.index(_leader(rows))
    best_params = dict(rows[lead]["params"])
    if rungs.no_search:  # too little time to search: the defaults, fitted on all of X
        best, seconds = refit(cls, {}, fixed, everything, deadline, clock, SAFETY)
        best_params = resolved(best)
        row = {"params": best_params, "mean_val_rmse": math.inf, "splits_run": 0, "stopped": ""}
        plan = members([row], 0, seed, cap)[1:]  # steps around them, in the time left
        first = (best, {**best_params, "random_state": seed, "refit_seconds": seconds})
        per = SAFETY * seconds / cost(best_params)
        best, chosen, more = refit_members(cls, plan, [per * cost(p) for _, p, _ in plan],
                                           fixed, everything, deadline, clock, SAFETY,
                                           first)  # fmt: skip
        return best, best_params, 0, chosen, seconds + more
    # the margin of the estimate kept the time; the refit itself stops before the deadline
    if deadline - clock() >= _refit_estimate(rows[lead], rungs.ratio) / SAFETY:
        plan = members(rows, lead, seed, cap)
        estimates = [_refit_estimate(rows[i], rungs.ratio) * cost(p) / cost(rows[i]["params"])
                     for i, p, _ in plan]  # fmt: skip
        best, chosen, seconds = refit_members(
            cls, plan, estimates, fixed, everything, deadline, clock, SAFETY
        )
        return best, best_params, lead, chosen, seconds
    # no time to refit: the best candidate as it was trained, on the training part
    best = models[lead]
    best.set_params(callbacks=None, early_stopping=False, patience=3, verbose=1)
    return best, best_params, lead, [{**best_params, "random_state": seed,
                                      "refit_seconds": 0.0}], 0.0  # fmt: skip


def _check_budget(budget: Any) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise TypeError(f"budget_seconds must be a number of seconds, got {budget!r}")
    if not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget_seconds must be a positive number of seconds, got {budget!r}")
    return float(budget)


def _run(
    cls: Any,
    cand: dict[str, Any],
    fixed: dict[str, Any],
    parts: list[tuple[Any, Any, np.ndarray]],
    rungs: Rungs,
    deadline: float,
    scoring: str,
) -> tuple[dict[str, Any], Any]:
    """Train one candidate on each split until a rung, the deadline or early stopping stops
    it; its row of the table, and its model (of the last split it ran on)."""
    rmses, maes, epochs, secs, done_epochs = [], [], [], [], []
    cut, timed_out = None, []
    for s, (train, val, yv) in enumerate(parts):
        col = "val_rmse" if scoring == "rmse" else "val_mae"

        t0 = clock()

        def watch(model: Any, row: dict, s: int = s, t0: float = t0, col: str = col) -> bool:
            epoch = int(row["epoch"])
            if rungs.probe and s == 0 and epoch == PROBE:
                rungs.probe = False
                if rungs.too_short(clock() - t0, epoch, model.n_epochs_, len(parts), deadline):
                    rungs.no_search = True
                    return True
            if rungs.out_of_time(clock() - t0, epoch, deadline):
                timed_out.append(s)
                return True
            return not rungs.keep_going(s, int(row["epoch"]), float(row[col]))

        model = cls(**{**cand, **fixed, "early_stopping": True, "patience": PATIENCE,
                       "callbacks": [watch]})  # fmt: skip
        try:
            model.fit(train, validation=val)
        except NonFiniteModelError:  # a rate too large for its λ: the worst score, no model
            if not cand:  # the defaults themselves: nothing to search around
                raise
            return _diverged(cand, clock() - t0), None
        secs.append(clock() - t0)
        pred = model.predict(val)
        rmses.append(rmse(yv, pred))
        maes.append(mae(yv, pred))
        best = model.best_epoch_ or model.n_epochs_done_
        epochs.append(int(best))
        done_epochs.append(int(model.n_epochs_done_))
        done, planned = model.n_epochs_done_, model.n_epochs_
        if done < planned and len(model.history_) and not _stopped_early(model):
            cut = f"stopped at epoch {done} of {planned}"
        if cut is not None or clock() >= deadline:
            break
    schedule = int(model.n_epochs_)
    n_best = int(round(np.mean(epochs)))
    # a fit the clock cut short replays as a whole schedule of the epochs it had: decayed to
    # the end, not frozen halfway through a longer one
    params = _final_params(model, n_best if timed_out else schedule, n_best)
    row = {
        **{k: params[k] for k in SEARCHED},
        "schedule": schedule,
        "mean_val_rmse": float(np.mean(rmses)),
        "std_val_rmse": float(np.std(rmses)),
        "mean_val_mae": float(np.mean(maes)),
        "std_val_mae": float(np.std(maes)),
        "mean_fit_seconds": float(np.mean(secs)),
        "std_fit_seconds": float(np.std(secs)),
        "mean_epochs": float(np.mean(epochs)),
        "splits_run": len(rmses),
        "stopped": cut or "",
        "seconds_per_epoch": float(np.sum(secs) / max(sum(done_epochs), 1)),
    }
    row["params"] = params
    return row, model


def _diverged(cand: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The row of a candidate whose fit diverged: an infinite error, so it never leads."""
    params = {k: cand[k] for k in SEARCHED if k in cand}
    return {
        **{k: params.get(k, np.nan) for k in SEARCHED},
        "schedule": int(cand.get("n_epochs", 0)),
        **dict.fromkeys(("mean_val_rmse", "mean_val_mae"), math.inf),
        **dict.fromkeys(("std_val_rmse", "std_val_mae", "std_fit_seconds"), 0.0),
        "mean_fit_seconds": seconds,
        "mean_epochs": 0.0,
        "splits_run": 0,
        "stopped": "diverged",
        "seconds_per_epoch": seconds,
        "params": params,
    }


def _stopped_early(model: Any) -> bool:
    """Whether the fit ended by its own early stopping (patience ran out after its best)."""
    best = model.best_epoch_
    return best is not None and model.n_epochs_done_ - best >= model.patience


def _final_params(model: Any, schedule: int, epochs: int) -> dict:
    """The parameters that replay the candidate's best epoch: its rates and factors, and the
    "auto" schedule of its length cut at the best epoch (an exponential schedule of the same
    decay per epoch)."""
    return {
        "reg": float(model.reg_),
        "learning_rate": float(model.learning_rate_),
        "n_factors": int(model.n_factors_),
        "reg_bias": float(model.reg_bias),
        "n_epochs": max(int(epochs), 1),
        "lr_schedule": "exponential",
        "lr_decay": float(0.8 ** (20.0 / max(schedule, 1))),
    }


def _leader(rows: list[dict]) -> dict:
    """The best row so far (those run on every split first); the data-aware default (the
    first row) keeps the lead against a candidate less than ``TIE`` better on validation, which
    is within the noise of a validation split."""
    best = min(rows, key=lambda r: (-r["splits_run"], r["mean_val_rmse"]))
    first = rows[0]
    if first["splits_run"] == best["splits_run"] and best["mean_val_rmse"] > first[
        "mean_val_rmse"
    ] * (1 - TIE):
        return first
    return best


def _refit_estimate(row: dict, ratio: float) -> float:
    """Seconds the refit of ``row``'s parameters on all of X should take, with a margin."""
    return SAFETY * row["seconds_per_epoch"] * row["params"]["n_epochs"] * ratio


def _ranked(rows: list[dict[str, Any]], scoring: str, n_splits: int) -> pd.DataFrame:
    """Candidates run on every split first, by mean validation error; then the others."""
    table = pd.DataFrame(rows)
    table["_partial"] = table["splits_run"] < n_splits
    table = table.sort_values(["_partial", f"mean_val_{scoring}"], kind="stable")
    table = table.drop(columns="_partial").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _bar(verbose: int) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit="candidate", desc="fastmf tune", leave=True)


def _tick(bar: Any, rows: list[dict], scoring: str) -> None:
    if bar is None:
        return
    best = min(r[f"mean_val_{scoring}"] for r in rows)
    bar.set_postfix_str(f"best val {scoring.upper()} {best:.4f}", refresh=False)
    bar.update(1)
