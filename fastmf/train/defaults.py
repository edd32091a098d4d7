"""The defaults that follow the batch size: ``optimizer="auto"`` and ``learning_rate=None``.

Pure functions of the parameters, resolved when ``fit`` starts into ``optimizer_`` and
``learning_rate_``. Per-rating training (batch size 1) keeps plain SGD at η = 0.03. Larger batches
use ``damped_sgd`` at η = 0.03·batch_size: a batch step divides by the nominal batch size, so an
epoch moves, to first order, as far as per-rating SGD's at 0.03; and a batch sums all its ratings
of a row at one point, so each row's rate is damped by its curvature in the batch, which keeps
heavy users and items stable where plain SGD diverges from batch 256 up. The choice comes from the
sweep in ``benchmarks/batch_defaults.py`` (table in ``benchmarks/README.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

AUTO = "auto"
PER_RATING_OPTIMIZER = "sgd"
BATCH_OPTIMIZER = "damped_sgd"
SGD_RATE_PER_RATING = 0.03  # plain and damped SGD: η = 0.03·batch_size

# η for the adaptive optimizers, at any batch size: their step does not scale with it
ADAPTIVE_RATES = {"row_adagrad": 0.1, "adagrad": 0.1, "adam": 0.01}


def resolve_optimizer(optimizer: str, batch_size: int) -> str:
    """The optimizer to train with: ``optimizer`` itself, or for "auto" plain SGD at batch size 1
    and ``damped_sgd`` for larger batches."""
    if optimizer != AUTO:
        return optimizer
    return PER_RATING_OPTIMIZER if batch_size == 1 else BATCH_OPTIMIZER


def resolve_learning_rate(learning_rate: float | None, optimizer: str, batch_size: int) -> float:
    """η at the first epoch: ``learning_rate`` itself, or for None the default of ``optimizer``
    (already resolved) at ``batch_size``: 0.03·batch_size for plain and damped SGD (0.03 per
    rating), and a rate independent of the batch size for the adaptive optimizers."""
    if learning_rate is not None:
        return float(learning_rate)
    if optimizer in ("sgd", "damped_sgd"):
        return SGD_RATE_PER_RATING * batch_size
    return ADAPTIVE_RATES[optimizer]


# ---------------------------------------------------------------- data-aware defaults
# ``n_factors``, ``n_epochs``, ``reg`` and ``init_std`` default to "auto": a function of the
# training data's counts, resolved at fit into ``n_factors_``, ``n_epochs_``, ``reg_`` and
# ``init_std_``. What decides is the number of ratings per model row, d = N / (users + items):
# about 9 on ml-latest-small, 31-38 on ml-100k, and 100 to 125 on ml-1m, ml-10m, ml-25m and
# their synthetic twins. Sparse data wants a larger λ, more factors started smaller, and a
# longer schedule; dense data keeps λ = 0.05, 64 factors and 20 epochs (the measurements:
# benchmarks/accuracy_defaults.py and accuracy_bars.py, tables in benchmarks/README.md).
AUTO_PARAMS = ("n_factors", "n_epochs", "reg", "init_std")
_DENSE = 100.0  # ratings per row from which the dense settings hold
_REG_SPARSE, _REG = 40.0, (0.08, 0.05)  # λ: 0.08 up to d = 40, 0.05 from d = 100
_EPOCHS_SPARSE, _EPOCHS = 10.0, (40, 20)  # epochs: 40 up to d = 10, 20 from d = 100
_FACTORS = (256, 64)
_INIT_STD = (0.02, 0.1)  # smaller starting factors for the sparse settings' longer vectors


def is_auto(value: object) -> bool:
    """Whether a parameter holds the "auto" sentinel (never true for arrays or numbers)."""
    return isinstance(value, str) and value == AUTO


def _ramp(d: float, lo: float) -> float:
    """0 up to d = ``lo`` ratings per row, 1 from d = 100, linear in log d between."""
    return min(max(math.log(d / lo) / math.log(_DENSE / lo), 0.0), 1.0)


def data_defaults(n_ratings: int, user_counts: Any, item_counts: Any) -> dict[str, Any]:
    """The values of the "auto" parameters for training data of these counts.

    ``user_counts`` and ``item_counts`` are each user's and item's number of ratings (a rating
    store holds them, so it resolves the same values without reading a rating). With
    d = n_ratings / (users + items), λ moves linearly in log d from 0.08 (d <= 40) to 0.05
    (d >= 100) and the epochs from 40 (d <= 10) to 20 (d >= 100); the factors step from 256 to
    64, and the starting factors' spread from 0.02 to 0.1, halfway along λ's ramp (d = 63).
    """
    n = int(n_ratings)
    n_u, n_i = int(np.sum(user_counts)), int(np.sum(item_counts))
    if n < 0 or n_u != n or n_i != n:
        raise ValueError(
            f"the counts do not add up: n_ratings={n}, users' counts sum to {n_u}, items' to "
            f"{n_i}; pass the training data's rating counts per user and per item"
        )
    rows = max(len(user_counts) + len(item_counts), 1)
    d = max(n / rows, 1e-12)
    t, s = _ramp(d, _REG_SPARSE), _ramp(d, _EPOCHS_SPARSE)
    return {
        "reg": round(_REG[0] + (_REG[1] - _REG[0]) * t, 4),
        "n_epochs": int(round(_EPOCHS[0] + (_EPOCHS[1] - _EPOCHS[0]) * s)),
        "n_factors": _FACTORS[0] if t < 0.5 else _FACTORS[1],
        "init_std": _INIT_STD[0] if t < 0.5 else _INIT_STD[1],
    }


def auto_schedule_decay(n_epochs: int) -> float:
    """The "auto" schedule's factor per epoch: 0.8 over 20 epochs, spread over ``n_epochs``, so
    that a fit of any length decays by the same total (0.8²⁰) and more epochs take smaller
    steps instead of freezing the model after the first twenty."""
    return 0.8 ** (20.0 / max(int(n_epochs), 1))
