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
