"""Read a training history and say, in plain words, what it shows.

``diagnose(model)`` answers the questions a user asks while watching a fit: is the
regularization loss ``λ Σ(‖p_u‖² + ‖q_i‖²)`` large or small against the base loss
``Σ(r − r̂)²``; is the validation error still falling, flat, or rising while the training error
falls (overfitting); are training and validation error both high and flat (underfitting); and is
a rising regularization loss a problem (usually not). Every finding carries the figures it rests
on, so the report can be checked against the history.

Findings (``Finding.code``) and the rule behind each
---------------------------------------------------
The thresholds are the constants re-exported here (``REG_HIGH_RATIO``, ``IMPROVING``, ...);
trends are least-squares slopes over the last 3 to 10 epochs, and rises are read on a 3-epoch
running mean against the curve's own epoch-to-epoch noise, so that the wobble of per-rating SGD
does not read as a trend.

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

from fastmf.evaluate.diagnose._baseline import bias_baseline
from fastmf.evaluate.diagnose._diagnose import diagnose
from fastmf.evaluate.diagnose._history import history_frame
from fastmf.evaluate.diagnose._report import Diagnosis, Finding
from fastmf.evaluate.diagnose._thresholds import (
    CODES,
    IMPROVING,
    REG_HIGH_RATIO,
    REG_LOW_RATIO,
    REG_RISE,
    REG_SHRINK,
    RISE_LARGE,
    RISE_SMALL,
    TRAIN_FALL,
    UNDERFIT_GAIN,
    UNDERFIT_GAP,
    UNSTABLE_RISE,
)

__all__ = [
    "CODES",
    "IMPROVING",
    "REG_HIGH_RATIO",
    "REG_LOW_RATIO",
    "REG_RISE",
    "REG_SHRINK",
    "RISE_LARGE",
    "RISE_SMALL",
    "TRAIN_FALL",
    "UNDERFIT_GAIN",
    "UNDERFIT_GAP",
    "UNSTABLE_RISE",
    "Diagnosis",
    "Finding",
    "bias_baseline",
    "diagnose",
    "history_frame",
]
