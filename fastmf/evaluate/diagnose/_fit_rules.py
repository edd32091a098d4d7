"""The rules that read the error curves: unstable, overfitting, still_improving or plateau,
underfitting. Each returns its finding, or None when the run does not show it."""

from __future__ import annotations

import numpy as np

from fastmf.evaluate.diagnose._curves import falling, noise, smooth, trend, window
from fastmf.evaluate.diagnose._reading import Run
from fastmf.evaluate.diagnose._report import Finding, fmt, lower_lr, param_hint, pct, signed_pct
from fastmf.evaluate.diagnose._thresholds import (
    IMPROVING,
    REG_HIGH_RATIO,
    RISE_LARGE,
    RISE_SMALL,
    TRAIN_FALL,
    UNDERFIT_GAIN,
    UNDERFIT_GAP,
    UNSTABLE_RISE,
)


def diverged(run: Run) -> Finding | None:
    """``unstable``: the base loss is not finite from some epoch on."""
    if np.all(np.isfinite(run.base)):
        return None
    bad = int(run.epochs[np.argmax(~np.isfinite(run.base))])
    return Finding(
        "unstable",
        "warning",
        f"the base loss is not finite from epoch {bad} on: the steps diverged",
        (lower_lr(run.p), "or raise reg"),
        {"epoch": float(bad)},
    )


def unstable(run: Run) -> Finding | None:
    """``unstable``: the training base loss ends clearly above its lowest point.

    The training loss of a sound run only falls (or stands still once converged); one that
    ends clearly above its lowest point took steps too large to settle.
    """
    if run.n < 3:
        return None
    base, epochs = run.base, run.epochs
    sbase = smooth(base)
    low = int(np.argmin(sbase))
    above = float(sbase[-1] / sbase[low] - 1.0)
    if not (above > UNSTABLE_RISE and low < run.n - 1):
        return None
    return Finding(
        "unstable",
        "warning",
        f"the training base loss rose from {fmt(base[low])} at epoch {epochs[low]} "
        f"to {fmt(base[-1])} at epoch {epochs[-1]} (+{pct(above)} on a 3-epoch "
        "running mean): the steps are too large for the optimizer to settle, so "
        "the rest of this report reads a run that is not converging",
        (lower_lr(run.p), "or use a decaying lr_schedule ('exponential' or 'plateau')"),
        {
            "lowest_epoch": float(epochs[low]),
            "lowest_base_loss": float(base[low]),
            "last_base_loss": float(base[-1]),
            "rise": above,
        },
    )


def overfitting(run: Run) -> Finding | None:
    """``overfitting``: validation RMSE rose above its best while the training RMSE fell.

    Decided on smoothed curves against the run's own noise; reported with raw figures.
    """
    val, train, best, n = run.val, run.train, run.best, run.n
    if val is None or best is None or best >= n - 1:
        return None
    sval, strain = smooth(val), smooth(train)
    b = int(np.argmin(sval))
    since = n - 1 - b
    end = float(np.mean(val[-min(3, since) :])) if since else float(val[-1])
    smooth_rise = (end - sval[b]) / sval[b]
    wobble = noise(val)
    threshold = max(RISE_SMALL, 3 * wobble)
    rise = (val[-1] - val[best]) / val[best]
    # The training error must fall clearly too: a validation error drifting up while the
    # training error stands still is noise or shrinking factors, not overfitting.
    train_fell = (strain[b] - train[-1]) / strain[b] >= TRAIN_FALL
    if not train_fell or not (
        (since >= 2 and smooth_rise >= threshold)
        or (since >= 1 and smooth_rise >= max(RISE_LARGE, 2 * threshold))
    ):
        return None
    return Finding(
        "overfitting",
        "warning",
        f"validation RMSE rose from {fmt(val[best])} at epoch {run.epochs[best]} to "
        f"{fmt(val[-1])} at epoch {run.epochs[-1]} (+{pct(rise)}) while training RMSE "
        f"kept falling from {fmt(train[best])} to {fmt(train[-1])}: the factors are "
        f"learning the noise of the training ratings{_collapsed(run)}{_restored(run, best)}",
        (
            param_hint("raise reg", run.p, "reg"),
            param_hint("fewer factors", run.p, "n_factors"),
            f"stop earlier (early_stopping=True, or n_epochs={run.epochs[best]})",
        ),
        {
            "best_epoch": float(run.epochs[best]),
            "best_val_rmse": float(val[best]),
            "last_val_rmse": float(val[-1]),
            "rise": float(rise),
            "smoothed_rise": float(smooth_rise),
            "noise": wobble,
            "train_rmse_at_best": float(train[best]),
            "last_train_rmse": float(train[-1]),
            "reg_ratio": run.ratio,
        },
    )


def _restored(run: Run, best: int) -> str:
    """The note that early stopping already restored the best epoch, when it did."""
    if run.model_best is not None and int(run.model_best) == int(run.epochs[best]):
        return (
            f"; early stopping restored epoch {run.model_best}, so the model you hold is the "
            "best one, but a stronger penalty may reach lower"
        )
    return ""


def _collapsed(run: Run) -> str:
    """The note that the reg loss exceeds a base loss driven toward zero, when it does."""
    if run.ratio >= REG_HIGH_RATIO:
        return (
            f" (the reg loss is now {pct(run.ratio)} of a base loss driven toward zero: the "
            "factors fit the training ratings almost exactly)"
        )
    return ""


def progress(run: Run, unstable: bool) -> Finding | None:
    """``still_improving`` or ``plateau``: whether the validation RMSE (training RMSE without
    validation data) still falls over the last epochs. None under 3 epochs."""
    if run.n < 3:
        return None
    val, epochs = run.val, run.epochs
    curve, curve_name = (
        (val, "validation RMSE") if val is not None else (run.train, "training RMSE")
    )
    fall, se = trend(curve)
    w = window(run.n)
    figs = {
        "fall_per_epoch": fall,
        "fall_se": se,
        "window": float(w),
        "first": float(curve[-w]),
        "last": float(curve[-1]),
    }
    span = (
        f"{fmt(curve[-w])} at epoch {epochs[-w]} to {fmt(curve[-1])} at epoch {epochs[-1]}, "
        f"a trend of {signed_pct(-fall)} per epoch over these {w} epochs"
    )
    if not falling(curve, IMPROVING):
        return Finding(
            "plateau",
            "info",
            f"{curve_name} has flattened: {span} (a fall of {pct(IMPROVING)} per epoch "
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
    if val is not None:
        text = f"{curve_name} is still falling: {span}; the run stopped too early"
        advice = (
            param_hint("train more epochs", run.p, "n_epochs"),
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
            param_hint("then train more epochs", run.p, "n_epochs"),
        )
    return Finding("still_improving", "info", text, advice, figs)


def underfitting(run: Run, flat: bool, unstable: bool) -> Finding | None:
    """``underfitting``: the errors are flat and high (against the bias-only model when the
    data was given, else against the validation RMSE)."""
    train_flat = run.n >= 3 and not falling(run.train, IMPROVING)
    if not (flat and train_flat and not unstable):
        return None
    verdict = _high_error(run)
    if verdict is None:
        return None
    text, figs = verdict
    val, train = run.val, run.train
    both = "training and validation error are" if val is not None else "training error is"
    figs.update(train_rmse=float(train[-1]))
    if val is not None:
        figs.update(val_rmse=float(val[-1]))
    p = run.p
    if run.shrank:  # The penalty shrinking the factors is the cause: name it alone.
        advice: tuple[str, ...] = (
            param_hint("lower reg first, it is zeroing the factors", p, "reg"),
        )
    else:
        advice = (
            param_hint("more factors", p, "n_factors"),
            param_hint("lower reg", p, "reg"),
            param_hint("more epochs", p, "n_epochs"),
        ) + (() if unstable else (param_hint("a higher learning rate", p, "learning_rate"),))
    return Finding("underfitting", "warning", f"{both} high and flat: {text}", advice, figs)


def _high_error(run: Run) -> tuple[str, dict[str, float]] | None:
    """Why the training error counts as high (the message and its figures), or None."""
    train, val, summary = run.train, run.val, run.summary
    if "bias_rmse" in summary:
        gain = 1.0 - train[-1] / summary["bias_rmse"]
        if not gain < UNDERFIT_GAIN:
            return None
        where = f"is only {pct(gain)} below" if gain > 0 else "is no lower than"
        return (
            f"training RMSE {fmt(train[-1])} {where} the bias-only model's "
            f"{fmt(summary['bias_rmse'])} on the same ratings (a model using its "
            f"factors gets {pct(UNDERFIT_GAIN)} or more below it): the factors add "
            "almost nothing",
            {"gain_over_bias": float(gain), "bias_rmse": summary["bias_rmse"]},
        )
    if val is None:
        return None
    gap = (val[-1] - train[-1]) / val[-1]
    if not gap < UNDERFIT_GAP:
        return None
    return (
        f"training RMSE {fmt(train[-1])} is within {pct(gap)} of validation RMSE "
        f"{fmt(val[-1])} (under {pct(UNDERFIT_GAP)}): the model fits the ratings "
        "it trains on hardly better than unseen ones (judged without the data; "
        "pass data= to compare with the bias-only model)",
        {"train_val_gap": float(gap)},
    )
