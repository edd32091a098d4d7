"""The shape of a curve: its recent trend, its epoch-to-epoch noise, its running mean."""

from __future__ import annotations

import math

import numpy as np


def window(n: int) -> int:
    """Number of recent epochs the trend is fitted on: a third of the run, 3 to 10."""
    return max(3, min(10, n // 3 + 1))


def trend(y: np.ndarray) -> tuple[float, float]:
    """Relative fall per epoch of ``y`` over the last window and its standard error.

    A least-squares line through the last ``window`` epochs, so that one noisy epoch does not
    decide; both figures are fractions of the window's mean (positive ``fall``: falling).
    """
    w = window(len(y))
    yy = y[-w:]
    t = np.arange(w) - (w - 1) / 2
    mean = float(yy.mean())
    slope = float(t @ (yy - mean) / (t @ t))
    resid = yy - mean - slope * t
    se = math.sqrt(float(resid @ resid) / (w - 2) / float(t @ t)) if w > 2 else 0.0
    scale = abs(mean) if mean != 0 else 1.0
    return -slope / scale, se / scale


def noise(y: np.ndarray) -> float:
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


def smooth(y: np.ndarray) -> np.ndarray:
    """Centred running mean over 3 epochs (2 at the ends)."""
    if len(y) < 3:
        return y.copy()
    out = np.convolve(y, np.ones(3) / 3, mode="same")
    out[0] = (y[0] + y[1]) / 2
    out[-1] = (y[-1] + y[-2]) / 2
    return out


def falling(y: np.ndarray, rate: float) -> bool:
    """Whether ``y`` falls by more than ``rate`` per epoch, beyond twice the trend's error."""
    fall, se = trend(y)
    return fall > rate and fall > 2 * se
