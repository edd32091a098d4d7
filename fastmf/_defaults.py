"""The defaults that follow the batch size: ``optimizer="auto"`` and ``learning_rate=None``.

Pure functions of the parameters, resolved when ``fit`` starts into ``optimizer_`` and
``learning_rate_``. Per-rating training (batch size 1) keeps plain SGD at η = 0.03. Larger batches
use ``row_adagrad`` (one AdaGrad sum of squares per row, bias included): a batch sums the
gradients of all its ratings of a row at one point, so a heavy user's or item's step grows with
its count in the batch, and a per-row adaptive step keeps every row stable without a rate tuned
to the data. The rates come from the sweep in ``benchmarks/batch_defaults.py`` (table in
``benchmarks/README.md``).
"""

from __future__ import annotations

AUTO = "auto"
PER_RATING_OPTIMIZER = "sgd"
BATCH_OPTIMIZER = "row_adagrad"
PER_RATING_SGD_RATE = 0.03

# η for the adaptive optimizers, at any batch size: their step does not scale with it
ADAPTIVE_RATES = {"row_adagrad": 0.1, "adagrad": 0.1, "adam": 0.01}


def resolve_optimizer(optimizer: str, batch_size: int) -> str:
    """The optimizer to train with: ``optimizer`` itself, or for "auto" plain SGD at batch size 1
    and ``row_adagrad`` for larger batches."""
    if optimizer != AUTO:
        return optimizer
    return PER_RATING_OPTIMIZER if batch_size == 1 else BATCH_OPTIMIZER


def resolve_learning_rate(learning_rate: float | None, optimizer: str, batch_size: int) -> float:
    """η at the first epoch: ``learning_rate`` itself, or for None the default of ``optimizer``
    (already resolved) at ``batch_size``. Plain SGD takes 0.03 per rating: a batch step divides
    by the nominal batch size, so η = 0.03·batch_size moves an epoch as far as per-rating SGD."""
    if learning_rate is not None:
        return float(learning_rate)
    if optimizer == "sgd":
        return PER_RATING_SGD_RATE * batch_size
    return ADAPTIVE_RATES[optimizer]
