"""The rules that read the regularization loss against the base loss: reg_dominates,
reg_negligible, rising_reg_normal. Each returns its finding, or None."""

from __future__ import annotations

import math

from fastmf.evaluate.diagnose._reading import Run
from fastmf.evaluate.diagnose._report import Finding, fmt, param_hint, pct
from fastmf.evaluate.diagnose._thresholds import REG_HIGH_RATIO, REG_LOW_RATIO, REG_RISE


def _scale(run: Run) -> tuple[str, dict[str, float]]:
    """The sentence giving λ‖·‖² against the base loss, and its figures."""
    base, regl, epochs = run.base, run.regl, run.epochs
    first_ratio = float(regl[0] / base[0]) if base[0] > 0 else math.inf
    text = (
        f"the regularization loss λΣ(‖p_u‖²+‖q_i‖²) is {pct(run.ratio)} of the base loss "
        f"Σ(r−r̂)² at epoch {epochs[-1]} ({fmt(regl[-1])} against {fmt(base[-1])})"
    )
    return text, {"reg_ratio": run.ratio, "first_reg_ratio": first_ratio}


def reg_dominates(run: Run, overfit: bool) -> Finding | None:
    """``reg_dominates``: the penalty is shrinking the factors, or the reg loss exceeds the base
    loss in a run that does not overfit."""
    shrank = run.shrank
    if not (shrank or (run.ratio >= REG_HIGH_RATIO and not overfit)):
        return None
    regl = run.regl
    scale, figs = _scale(run)
    why = (
        f"; it fell from {fmt(regl[0])} at epoch {run.epochs[0]}, so the penalty is shrinking "
        "the factors toward zero faster than the ratings pull them out"
        if shrank
        else "; the penalty, not the ratings, is shaping the fit"
    )
    return Finding(
        "reg_dominates",
        "warning",
        scale + why,
        (param_hint("lower reg", run.p, "reg", factor="÷3 to ÷10"),),
        {**figs, "first_reg_loss": float(regl[0]), "last_reg_loss": float(regl[-1])},
    )


def reg_negligible(run: Run, overfit: bool) -> Finding | None:
    """``reg_negligible``: the reg loss is under 1% of the base loss (a warning when the run
    overfits, since λ is then too small)."""
    if not run.ratio < REG_LOW_RATIO:
        return None
    scale, figs = _scale(run)
    reg = run.p.get("reg")
    if reg is not None and float(reg) == 0.0:
        text = "reg is 0: nothing holds the factors back"
    else:
        text = scale + ": the penalty barely shapes the factors"
    advice: tuple[str, ...] = ()
    severity = "info"
    if overfit:
        advice = (param_hint("raise reg", run.p, "reg", factor="×3 to ×10"),)
        severity = "warning"
        text += ", and the model overfits, so λ is too small"
    else:
        text += "; fine while the validation error does not rise"
    return Finding("reg_negligible", severity, text, advice, figs)


def rising_reg_normal(run: Run) -> Finding | None:
    """``rising_reg_normal``: the reg loss rose 10% or more up to the best validation epoch
    while the validation RMSE (without validation data: the total loss) fell."""
    val, base, regl, epochs = run.val, run.base, run.regl, run.epochs
    upto = run.best if (val is not None and run.best is not None) else run.n - 1
    if not (upto >= 1 and regl[0] > 0 and regl[upto] >= REG_RISE * regl[0]):
        return None
    figs = {
        "first_reg_loss": float(regl[0]),
        "reg_loss": float(regl[upto]),
        "first_base_loss": float(base[0]),
        "base_loss": float(base[upto]),
        "epoch": float(epochs[upto]),
    }
    if val is not None and val[upto] < val[0]:
        figs.update(first_val_rmse=float(val[0]), val_rmse=float(val[upto]))
        return Finding(
            "rising_reg_normal",
            "ok",
            f"the regularization loss rose from {fmt(regl[0])} to {fmt(regl[upto])} by "
            f"epoch {epochs[upto]} while validation RMSE fell from {fmt(val[0])} to "
            f"{fmt(val[upto])}: this is normal, the factors start small and grow as they "
            "learn the ratings, and the base loss falls by more than the penalty rises "
            f"({fmt(base[0])} to {fmt(base[upto])}); what matters is the validation error",
            (),
            figs,
        )
    total = run.h["total_loss"]
    if val is None and total.iloc[upto] < total.iloc[0]:
        return Finding(
            "rising_reg_normal",
            "ok",
            f"the regularization loss rose from {fmt(regl[0])} to {fmt(regl[upto])} while "
            f"the base loss fell from {fmt(base[0])} to {fmt(base[upto])}: this is normal, "
            "the factors start small and grow as they learn; without validation data "
            "this run cannot show whether they grow too far (fit with "
            "validation_fraction=0.1 to see)",
            (),
            figs,
        )
    return None
