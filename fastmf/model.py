"""The estimator's old home: ``fastmf.model`` re-exports ``fastmf.train``'s public names."""

from fastmf.errors import NotFittedError
from fastmf.train.estimator import MatrixFactorization
from fastmf.train.params import BIASES, DTYPES, LR_SCHEDULES, OPTIMIZERS
from fastmf.train.state import fixed_biases

__all__ = [
    "BIASES",
    "DTYPES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "MatrixFactorization",
    "NotFittedError",
    "fixed_biases",
]
