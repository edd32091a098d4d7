"""Training: the estimator and what it delegates to (parameters, the fitted state and its
layout, the epoch loop, the guarded kernel boundary, transactions and locks)."""

from fastmf.train.estimator import MatrixFactorization

__all__ = ["MatrixFactorization"]
