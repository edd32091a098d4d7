"""Read a training history and say, in plain words, what it shows.

``diagnose(model)`` answers the questions a user asks while watching a fit: is the
regularization loss ``λ Σ(‖p_u‖² + ‖q_i‖²)`` large or small against the base loss
``Σ(r − r̂)²``; is the validation error still falling, flat, or rising while the training error
falls (overfitting); are training and validation error both high and flat (underfitting); and is
a rising regularization loss a problem (usually not). Every finding carries the figures it rests
on, so the report can be checked against the history.

Findings (``Finding.code``) and the rule behind each
---------------------------------------------------
The thresholds are the module constants below; trends are least-squares slopes over the last
3 to 10 epochs, and rises are read on a 3-epoch running mean against the curve's own
epoch-to-epoch noise, so that the wobble of per-rating SGD does not read as a trend.

- ``unstable``: the training base loss ends 2% or more above its lowest point (or is not
  finite): the learning rate is too large. The rest of the report is read with that caveat.
- ``overfitting``: validation RMSE rose above its best epoch's (0.2% for two epochs or more, or
  1% at once, and beyond 3× its noise) while the training RMSE fell 1% or more.
- ``still_improving``: validation RMSE (training RMSE without validation data) still falls by
  more than 0.1% per epoch, beyond twice the slope's standard error.
- ``plateau``: it no longer does.
- ``underfitting``: flat, and high (below).
- ``reg_dominates``: the penalty is shrinking the factors (the reg loss ended below half its
  first epoch's, at its lowest), or the reg loss exceeds the base loss in a run that does not
  overfit. (A reg loss above a base loss that overfitting drove toward zero is not this.)
- ``reg_negligible``: the reg loss is under 1% of the base loss (a warning when the run
  overfits, since λ is then too small).
- ``rising_reg_normal``: the reg loss rose 10% or more up to the best validation epoch while the
  validation RMSE fell: the factors grow from their small start as they learn.

How "high" is judged (underfitting)
-----------------------------------
A model whose factors learn nothing fits the training data no better than the bias-only model
``μ + b_u + b_i``. When ``diagnose`` is given the training ``data``, it fits that bias-only model
in a few vectorized passes (damped means, see :func:`bias_baseline`) and compares the model's
training RMSE with it: factors that cut the training RMSE by less than 5% below the bias-only
model's are "high". Without data it falls back to the gap between training and validation RMSE:
a model that fits its training ratings barely better than unseen ones (a gap under 3% of the
validation RMSE) is not using its capacity. The verdict with data is firmer and the report says
which rule it used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CODES", "Diagnosis", "Finding", "bias_baseline", "diagnose", "history_frame"]

# Thresholds, each a fraction; named here so the docs, the report and the tests agree.
REG_HIGH_RATIO = 1.0  # reg loss above the base loss: the penalty, not the data, shapes the fit
REG_LOW_RATIO = 0.01  # reg loss < 1% of base loss: the penalty barely touches the factors
REG_SHRINK = 0.5  # reg loss ended below half its first epoch's, at its lowest: factors shrinking
IMPROVING = 1e-3  # a fall of more than 0.1% per epoch (least squares over the last 3-10 epochs)
RISE_SMALL = 0.002  # val RMSE 0.2% above its best, held for 2 epochs or more: overfitting
RISE_LARGE = 0.01  # val RMSE 1% above its best, even for 1 epoch: overfitting
# For either: on the 3-epoch running mean and above 3 times the curve's epoch-to-epoch noise.
TRAIN_FALL = 0.01  # ... while the training RMSE fell by 1% or more since the best epoch
UNDERFIT_GAIN = 0.05  # training RMSE less than 5% below the bias-only model's: factors idle
UNDERFIT_GAP = 0.03  # without data: train RMSE within 3% of val RMSE
REG_RISE = 1.1  # reg loss rose by 10% or more: "rising"
UNSTABLE_RISE = 0.02  # training loss ending 2% above its lowest (running mean): steps too large

CODES = (
    "unstable",
    "overfitting",
    "underfitting",
    "still_improving",
    "plateau",
    "reg_dominates",
    "reg_negligible",
    "rising_reg_normal",
)
"""Every finding code ``diagnose`` can emit, in the order the report lists them."""


@dataclass(frozen=True)
class Finding:
    """One statement about a training run.

    Attributes
    ----------
    code : str
        A stable identifier, one of ``CODES`` (for example ``"overfitting"``).
    severity : str
        ``"warning"`` (something to change), ``"info"`` (worth knowing) or ``"ok"`` (normal).
    message : str
        The statement in plain words, with the figures that support it.
    advice : tuple of str
        What to try, each a short imperative; empty when nothing needs to change.
    figures : dict
        The numbers behind the message (epochs, RMSEs, ratios), for programs and tests.
    """

    code: str
    severity: str
    message: str
    advice: tuple[str, ...] = ()
    figures: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        mark = {"warning": "!", "info": "-", "ok": "+"}.get(self.severity, "-")
        lines = [f"{mark} {self.code}: {self.message}"]
        if self.advice:
            lines.append("    what to try: " + "; ".join(self.advice) + ".")
        return "\n".join(lines)


@dataclass
class Diagnosis:
    """The findings of :func:`diagnose`; ``str()`` of it is the readable report.

    Attributes
    ----------
    findings : list of Finding
        In report order (problems first).
    history : DataFrame
        The history that was read, one row per epoch.
    params : dict
        The model parameters that were known (``reg``, ``n_factors``, ...).
    summary : dict
        The headline figures of the last epoch and the baselines (when data was given).
    """

    findings: list[Finding]
    history: pd.DataFrame
    params: dict[str, Any]
    summary: dict[str, float]

    @property
    def codes(self) -> list[str]:
        """The codes of the findings, in report order."""
        return [f.code for f in self.findings]

    def get(self, code: str) -> Finding | None:
        """The finding with this code, or None when the run did not show it."""
        for finding in self.findings:
            if finding.code == code:
                return finding
        return None

    def __contains__(self, code: object) -> bool:
        return any(f.code == code for f in self.findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __repr__(self) -> str:
        return f"Diagnosis(codes={self.codes!r})"

    def __str__(self) -> str:
        s, p = self.summary, self.params
        known = [f"{k}={p[k]}" for k in ("n_factors", "reg", "learning_rate") if k in p]
        head = f"fastmf diagnosis of {int(s['n_epochs'])} epoch(s)"
        lines = [head + (f" ({', '.join(known)})" if known else "")]
        last = (
            f"  last epoch {int(s['epoch'])}: base loss {s['base_loss']:.4f}, "
            f"reg loss {s['reg_loss']:.4f} ({_pct(s['reg_ratio'])} of base), "
            f"train RMSE {s['train_rmse']:.4f}"
        )
        if "val_rmse" in s:
            last += (
                f", val RMSE {s['val_rmse']:.4f} "
                f"(best {s['best_val_rmse']:.4f} at epoch {int(s['best_epoch'])})"
            )
        lines.append(last)
        if "bias_rmse" in s:
            lines.append(
                f"  baselines on the training data: rating std {s['rating_std']:.4f}, "
                f"bias-only RMSE {s['bias_rmse']:.4f}"
            )
        if "restored_epoch" in s:
            lines.append(f"  early stopping restored the model of epoch {int(s['restored_epoch'])}")
        if s.get("too_few_epochs"):
            lines.append("  (fewer than 3 epochs: too few to judge a trend)")
        lines.append("")
        if not self.findings:
            lines.append("  nothing to report.")
        lines.extend(str(f) for f in self.findings)
        return "\n".join(lines)


def _pct(x: float) -> str:
    if x == 0:
        return "0%"
    if abs(x) < 0.001:
        return f"{100 * x:.3f}%"
    return f"{100 * x:.1f}%" if abs(x) < 10 else f"{100 * x:.0f}%"


def _f(x: float) -> str:
    return f"{x:.4f}"


# ---------------------------------------------------------------------------------------------
# Inputs


def _as_history(model_or_history: Any) -> tuple[pd.DataFrame, dict[str, Any], Any]:
    """The history DataFrame, the model's parameters and the model (or None)."""
    if isinstance(model_or_history, pd.DataFrame):
        return model_or_history, {}, None
    if isinstance(model_or_history, Mapping):
        return pd.DataFrame(dict(model_or_history)), {}, None
    history = getattr(model_or_history, "history_", None)
    if history is None:
        if hasattr(model_or_history, "get_params"):
            raise ValueError(
                f"{type(model_or_history).__name__} has no history_: it is not fitted; "
                "call fit(...) first"
            )
        raise TypeError(
            "model_or_history must be a fitted MatrixFactorization, a history DataFrame or a "
            f"mapping of columns, got {type(model_or_history).__name__}"
        )
    params: dict[str, Any] = {}
    if hasattr(model_or_history, "get_params"):
        params = dict(model_or_history.get_params())
    return history, params, model_or_history


def history_frame(model_or_history: Any) -> pd.DataFrame:
    """The training history as a clean DataFrame (checked, missing derived columns filled).

    Parameters
    ----------
    model_or_history : MatrixFactorization or DataFrame or mapping
        A fitted model (its ``history_`` is read) or a history with at least the columns
        ``base_loss`` and ``reg_loss``.

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``base_loss``, ``reg_loss``, ``total_loss``, ``train_rmse`` and,
        where present and not all missing, ``val_rmse``, ``val_mae``, ``learning_rate``,
        ``seconds``; float columns as float64.
    """
    history, _, _ = _as_history(model_or_history)
    return _clean_history(history)


def _clean_history(history: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("base_loss", "reg_loss") if c not in history.columns]
    if missing:
        raise ValueError(
            f"history lacks the column(s) {missing}; a fastmf history has epoch, base_loss, "
            f"reg_loss, total_loss, train_rmse[, val_rmse, val_mae], learning_rate, seconds "
            f"(got {list(history.columns)})"
        )
    if len(history) == 0:
        raise ValueError("history is empty: the model trained no epoch; fit it first")
    h = pd.DataFrame(index=pd.RangeIndex(len(history)))
    epochs = history["epoch"] if "epoch" in history.columns else np.arange(1, len(history) + 1)
    h["epoch"] = np.asarray(epochs, dtype=np.int64)
    h["base_loss"] = np.asarray(history["base_loss"], dtype=np.float64)
    h["reg_loss"] = np.asarray(history["reg_loss"], dtype=np.float64)
    if "total_loss" in history.columns:
        h["total_loss"] = np.asarray(history["total_loss"], dtype=np.float64)
    else:
        h["total_loss"] = h["base_loss"] + h["reg_loss"]
    if "train_rmse" in history.columns:
        h["train_rmse"] = np.asarray(history["train_rmse"], dtype=np.float64)
    else:
        h["train_rmse"] = np.sqrt(h["base_loss"])
    for col in ("val_rmse", "val_mae", "learning_rate", "seconds"):
        if col in history.columns:
            values = np.asarray(history[col], dtype=np.float64)
            if not np.all(np.isnan(values)):
                h[col] = values
    return h


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
    rating_std = float(np.sqrt(np.mean(resid**2)))
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    n_u = np.bincount(users, minlength=n_users) + damping
    n_i = np.bincount(items, minlength=n_items) + damping
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    for _ in range(n_sweeps):
        bi = np.bincount(items, resid - bu[users], minlength=n_items) / n_i
        bu = np.bincount(users, resid - bi[items], minlength=n_users) / n_u
    err = resid - bu[users] - bi[items]
    return rating_std, float(np.sqrt(np.mean(err**2)))


# ---------------------------------------------------------------------------------------------
# The diagnosis


def _window(n: int) -> int:
    """Number of recent epochs the trend is fitted on: a third of the run, 3 to 10."""
    return max(3, min(10, n // 3 + 1))


def _trend(y: np.ndarray) -> tuple[float, float]:
    """Relative fall per epoch of ``y`` over the last window and its standard error.

    A least-squares line through the last ``_window`` epochs, so that one noisy epoch does not
    decide; both figures are fractions of the window's mean (positive ``fall``: falling).
    """
    w = _window(len(y))
    yy = y[-w:]
    t = np.arange(w) - (w - 1) / 2
    mean = float(yy.mean())
    slope = float(t @ (yy - mean) / (t @ t))
    resid = yy - mean - slope * t
    se = math.sqrt(float(resid @ resid) / (w - 2) / float(t @ t)) if w > 2 else 0.0
    scale = abs(mean) if mean != 0 else 1.0
    return -slope / scale, se / scale


def _noise(y: np.ndarray) -> float:
    """Epoch-to-epoch noise of ``y`` over its second half, relative to its level.

    A robust standard deviation (median absolute deviation) of the first differences, divided
    by √2; zero for a smooth curve. Per-rating SGD gives validation curves that wobble by a few
    tenths of a percent, which must not read as overfitting.
    """
    tail = y[len(y) // 2 :]
    d = np.diff(tail)
    if len(d) < 3:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / math.sqrt(2) / float(np.mean(np.abs(tail)))


def _smooth(y: np.ndarray) -> np.ndarray:
    """Centred running mean over 3 epochs (2 at the ends)."""
    if len(y) < 3:
        return y.copy()
    out = np.convolve(y, np.ones(3) / 3, mode="same")
    out[0] = (y[0] + y[1]) / 2
    out[-1] = (y[-1] + y[-2]) / 2
    return out


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
    raw, model_params, model = _as_history(model_or_history)
    h = _clean_history(raw)
    p = dict(model_params)
    if params is not None:
        p.update(params)
    n = len(h)
    epochs = h["epoch"].to_numpy()
    base = h["base_loss"].to_numpy()
    regl = h["reg_loss"].to_numpy()
    train = h["train_rmse"].to_numpy()
    val = h["val_rmse"].to_numpy() if "val_rmse" in h.columns else None

    ratio = float(regl[-1] / base[-1]) if base[-1] > 0 else math.inf
    summary: dict[str, float] = {
        "n_epochs": float(n),
        "epoch": float(epochs[-1]),
        "base_loss": float(base[-1]),
        "reg_loss": float(regl[-1]),
        "total_loss": float(h["total_loss"].iloc[-1]),
        "reg_ratio": ratio,
        "train_rmse": float(train[-1]),
    }
    best = None
    if val is not None:
        valid = np.where(np.isnan(val), np.inf, val)
        best = int(np.argmin(valid))
        summary.update(
            val_rmse=float(val[-1]), best_val_rmse=float(val[best]), best_epoch=float(epochs[best])
        )
    if data is not None:
        rating_std, bias_rmse = bias_baseline(data)
        summary.update(rating_std=rating_std, bias_rmse=bias_rmse)

    findings: list[Finding] = []
    model_best = getattr(model, "best_epoch_", None) if model is not None else None
    if model_best is not None:
        summary["restored_epoch"] = float(model_best)

    # -- stability: the training loss itself going up
    if not np.all(np.isfinite(base)):
        bad = int(epochs[np.argmax(~np.isfinite(base))])
        findings.append(
            Finding(
                "unstable",
                "warning",
                f"the base loss is not finite from epoch {bad} on: the steps diverged",
                (_lower_lr(p), "or raise reg"),
                {"epoch": float(bad)},
            )
        )
        return Diagnosis(findings, h, p, summary)
    unstable = False
    if n >= 3:
        # The training loss of a sound run only falls (or stands still once converged); one
        # that ends clearly above its lowest point took steps too large to settle.
        sbase = _smooth(base)
        low = int(np.argmin(sbase))
        above = float(sbase[-1] / sbase[low] - 1.0)
        if above > UNSTABLE_RISE and low < n - 1:
            unstable = True
            findings.append(
                Finding(
                    "unstable",
                    "warning",
                    f"the training base loss rose from {_f(base[low])} at epoch {epochs[low]} "
                    f"to {_f(base[-1])} at epoch {epochs[-1]} (+{_pct(above)} on a 3-epoch "
                    "running mean): the steps are too large for the optimizer to settle, so "
                    "the rest of this report reads a run that is not converging",
                    (_lower_lr(p), "or use a decaying lr_schedule ('exponential' or 'plateau')"),
                    {
                        "lowest_epoch": float(epochs[low]),
                        "lowest_base_loss": float(base[low]),
                        "last_base_loss": float(base[-1]),
                        "rise": above,
                    },
                )
            )

    # -- the validation (or training) curve: overfitting, still improving or plateau
    overfit = False
    if val is not None and best is not None and best < n - 1:
        # Decided on smoothed curves against the run's own noise; reported with raw figures.
        sval, strain = _smooth(val), _smooth(train)
        b = int(np.argmin(sval))
        since = n - 1 - b
        end = float(np.mean(val[-min(3, since) :])) if since else float(val[-1])
        smooth_rise = (end - sval[b]) / sval[b]
        noise = _noise(val)
        threshold = max(RISE_SMALL, 3 * noise)
        rise = (val[-1] - val[best]) / val[best]
        # The training error must fall clearly too: a validation error drifting up while the
        # training error stands still is noise or shrinking factors, not overfitting.
        train_fell = (strain[b] - train[-1]) / strain[b] >= TRAIN_FALL
        if train_fell and (
            (since >= 2 and smooth_rise >= threshold)
            or (since >= 1 and smooth_rise >= max(RISE_LARGE, 2 * threshold))
        ):
            overfit = True
            restored = (
                f"; early stopping restored epoch {model_best}, so the model you hold is the "
                "best one, but a stronger penalty may reach lower"
                if model_best is not None and int(model_best) == int(epochs[best])
                else ""
            )
            collapsed = (
                f" (the reg loss is now {_pct(ratio)} of a base loss driven toward zero: the "
                "factors fit the training ratings almost exactly)"
                if ratio >= REG_HIGH_RATIO
                else ""
            )
            findings.append(
                Finding(
                    "overfitting",
                    "warning",
                    f"validation RMSE rose from {_f(val[best])} at epoch {epochs[best]} to "
                    f"{_f(val[-1])} at epoch {epochs[-1]} (+{_pct(rise)}) while training RMSE "
                    f"kept falling from {_f(train[best])} to {_f(train[-1])}: the factors are "
                    f"learning the noise of the training ratings{collapsed}{restored}",
                    (
                        _param_hint("raise reg", p, "reg"),
                        _param_hint("fewer factors", p, "n_factors"),
                        f"stop earlier (early_stopping=True, or n_epochs={epochs[best]})",
                    ),
                    {
                        "best_epoch": float(epochs[best]),
                        "best_val_rmse": float(val[best]),
                        "last_val_rmse": float(val[-1]),
                        "rise": float(rise),
                        "smoothed_rise": float(smooth_rise),
                        "noise": noise,
                        "train_rmse_at_best": float(train[best]),
                        "last_train_rmse": float(train[-1]),
                        "reg_ratio": ratio,
                    },
                )
            )

    curve, curve_name = (val, "validation RMSE") if val is not None else (train, "training RMSE")
    flat = False
    if n >= 3 and not overfit:
        fall, se = _trend(curve)
        w = _window(n)
        figs = {
            "fall_per_epoch": fall,
            "fall_se": se,
            "window": float(w),
            "first": float(curve[-w]),
            "last": float(curve[-1]),
        }
        span = (
            f"{_f(curve[-w])} at epoch {epochs[-w]} to {_f(curve[-1])} at epoch {epochs[-1]}, "
            f"a trend of {_signed_pct(-fall)} per epoch over these {w} epochs"
        )
        if _falling(curve, IMPROVING):
            if val is not None:
                text = f"{curve_name} is still falling: {span}; the run stopped too early"
                advice = (
                    _param_hint("train more epochs", p, "n_epochs"),
                    "or raise learning_rate a little",
                )
            else:
                text = (
                    f"{curve_name} is still falling: {span}; the optimization has not "
                    "converged, but without validation data this says nothing about unseen "
                    "ratings (a training error can fall all the way into overfitting)"
                )
                advice = (
                    "fit with validation_fraction=0.1 to see whether more epochs help",
                    _param_hint("then train more epochs", p, "n_epochs"),
                )
            findings.append(Finding("still_improving", "info", text, advice, figs))
        else:
            flat = True
            findings.append(
                Finding(
                    "plateau",
                    "info",
                    f"{curve_name} has flattened: {span} (a fall of {_pct(IMPROVING)} per epoch "
                    "or more counts as improving); "
                    + (
                        "the steps are too large to settle (see unstable): lower learning_rate "
                        "before judging capacity or reg"
                        if unstable
                        else "more epochs will not help, a different capacity or reg might"
                    ),
                    (),
                    figs,
                )
            )
    if n < 3:
        summary["too_few_epochs"] = 1.0

    # -- underfitting: high and flat
    # Shrinking: the reg loss ended below half its first epoch's and at its lowest (within
    # 10%), so the factors are still being pulled toward zero; a reg loss that fell after a wild
    # first epoch and grows again is not that.
    shrank = bool(regl[0] > 0 and regl[-1] < REG_SHRINK * regl[0] and regl[-1] <= 1.1 * regl.min())
    train_flat = n >= 3 and not _falling(train, IMPROVING)
    if flat and train_flat and not unstable:
        verdict = None
        if "bias_rmse" in summary:
            gain = 1.0 - train[-1] / summary["bias_rmse"]
            if gain < UNDERFIT_GAIN:
                where = f"is only {_pct(gain)} below" if gain > 0 else "is no lower than"
                verdict = (
                    (
                        f"training RMSE {_f(train[-1])} {where} the bias-only model's "
                        f"{_f(summary['bias_rmse'])} on the same ratings (a model using its "
                        f"factors gets {_pct(UNDERFIT_GAIN)} or more below it): the factors add "
                        "almost nothing"
                    ),
                    {"gain_over_bias": float(gain), "bias_rmse": summary["bias_rmse"]},
                )
        elif val is not None:
            gap = (val[-1] - train[-1]) / val[-1]
            if gap < UNDERFIT_GAP:
                verdict = (
                    (
                        f"training RMSE {_f(train[-1])} is within {_pct(gap)} of validation RMSE "
                        f"{_f(val[-1])} (under {_pct(UNDERFIT_GAP)}): the model fits the ratings "
                        "it trains on hardly better than unseen ones (judged without the data; "
                        "pass data= to compare with the bias-only model)"
                    ),
                    {"train_val_gap": float(gap)},
                )
        if verdict is not None:
            text, figs = verdict
            both = "training and validation error are" if val is not None else "training error is"
            figs.update(train_rmse=float(train[-1]))
            if val is not None:
                figs.update(val_rmse=float(val[-1]))
            findings.append(
                Finding(
                    "underfitting",
                    "warning",
                    f"{both} high and flat: {text}",
                    (
                        # The penalty shrinking the factors is the cause: name it alone.
                        (_param_hint("lower reg first, it is zeroing the factors", p, "reg"),)
                        if shrank
                        else (
                            _param_hint("more factors", p, "n_factors"),
                            _param_hint("lower reg", p, "reg"),
                            _param_hint("more epochs", p, "n_epochs"),
                        )
                        + (
                            ()
                            if unstable
                            else (_param_hint("a higher learning rate", p, "learning_rate"),)
                        )
                    ),
                    figs,
                )
            )

    # -- the scale of λ‖·‖² against the base loss
    reg = p.get("reg")
    first_ratio = float(regl[0] / base[0]) if base[0] > 0 else math.inf
    scale = (
        f"the regularization loss λΣ(‖p_u‖²+‖q_i‖²) is {_pct(ratio)} of the base loss "
        f"Σ(r−r̂)² at epoch {epochs[-1]} ({_f(regl[-1])} against {_f(base[-1])})"
    )
    reg_figs = {"reg_ratio": ratio, "first_reg_ratio": first_ratio}
    if shrank or (ratio >= REG_HIGH_RATIO and not overfit):
        why = (
            f"; it fell from {_f(regl[0])} at epoch {epochs[0]}, so the penalty is shrinking the "
            "factors toward zero faster than the ratings pull them out"
            if shrank
            else "; the penalty, not the ratings, is shaping the fit"
        )
        findings.append(
            Finding(
                "reg_dominates",
                "warning",
                scale + why,
                (_param_hint("lower reg", p, "reg", factor="÷3 to ÷10"),),
                {**reg_figs, "first_reg_loss": float(regl[0]), "last_reg_loss": float(regl[-1])},
            )
        )
    elif ratio < REG_LOW_RATIO:
        if reg is not None and float(reg) == 0.0:
            text = "reg is 0: nothing holds the factors back"
        else:
            text = scale + ": the penalty barely shapes the factors"
        advice: tuple[str, ...] = ()
        sev = "info"
        if overfit:
            advice = (_param_hint("raise reg", p, "reg", factor="×3 to ×10"),)
            sev = "warning"
            text += ", and the model overfits, so λ is too small"
        else:
            text += "; fine while the validation error does not rise"
        findings.append(Finding("reg_negligible", sev, text, advice, reg_figs))

    # -- a rising regularization loss is normal while validation error falls
    upto = best if (val is not None and best is not None) else n - 1
    if upto >= 1 and regl[0] > 0 and regl[upto] >= REG_RISE * regl[0]:
        figs = {
            "first_reg_loss": float(regl[0]),
            "reg_loss": float(regl[upto]),
            "first_base_loss": float(base[0]),
            "base_loss": float(base[upto]),
            "epoch": float(epochs[upto]),
        }
        if val is not None and val[upto] < val[0]:
            figs.update(first_val_rmse=float(val[0]), val_rmse=float(val[upto]))
            findings.append(
                Finding(
                    "rising_reg_normal",
                    "ok",
                    f"the regularization loss rose from {_f(regl[0])} to {_f(regl[upto])} by "
                    f"epoch {epochs[upto]} while validation RMSE fell from {_f(val[0])} to "
                    f"{_f(val[upto])}: this is normal, the factors start small and grow as they "
                    "learn the ratings, and the base loss falls by more than the penalty rises "
                    f"({_f(base[0])} to {_f(base[upto])}); what matters is the validation error",
                    (),
                    figs,
                )
            )
        elif val is None and h["total_loss"].iloc[upto] < h["total_loss"].iloc[0]:
            findings.append(
                Finding(
                    "rising_reg_normal",
                    "ok",
                    f"the regularization loss rose from {_f(regl[0])} to {_f(regl[upto])} while "
                    f"the base loss fell from {_f(base[0])} to {_f(base[upto])}: this is normal, "
                    "the factors start small and grow as they learn; without validation data "
                    "this run cannot show whether they grow too far (fit with "
                    "validation_fraction=0.1 to see)",
                    (),
                    figs,
                )
            )

    order = {c: k for k, c in enumerate(CODES)}
    findings.sort(key=lambda f: order.get(f.code, len(order)))
    return Diagnosis(findings, h, p, summary)


def _falling(y: np.ndarray, rate: float) -> bool:
    """Whether ``y`` falls by more than ``rate`` per epoch, beyond twice the trend's error."""
    fall, se = _trend(y)
    return fall > rate and fall > 2 * se


def _signed_pct(x: float) -> str:
    shown = _pct(abs(x))
    if shown.strip("0.%") == "":  # rounds to zero: no sign on "0.000%"
        return "about 0%"
    return ("+" if x > 0 else "−" if x < 0 else "") + shown


def _param_hint(text: str, p: Mapping[str, Any], name: str, factor: str | None = None) -> str:
    """``"raise reg (now 0.02)"``, or the text alone when the parameter is unknown."""
    if name not in p or p[name] is None:
        return text
    extra = f", try {factor}" if factor else ""
    return f"{text} (now {name}={p[name]}{extra})"


def _lower_lr(p: Mapping[str, Any]) -> str:
    return _param_hint("lower learning_rate", p, "learning_rate", factor="÷3")
