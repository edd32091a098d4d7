"""fastmf: biased matrix factorization of explicit ratings, with Numba kernels."""

from fastmf._validation import NonFiniteModelError
from fastmf.model import MatrixFactorization, NotFittedError
from fastmf.ratings import IdMap, Ratings

__version__ = "0.1.0"

__all__ = [
    "IdMap",
    "MatrixFactorization",
    "NonFiniteModelError",
    "NotFittedError",
    "Ratings",
    "__version__",
]
