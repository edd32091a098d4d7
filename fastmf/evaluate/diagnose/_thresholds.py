"""The thresholds of diagnose's rules, each a fraction, and the codes of its findings.

Named here so that the docs, the report and the tests agree.
"""

from __future__ import annotations

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
