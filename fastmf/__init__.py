"""fastmf: biased matrix factorization of explicit ratings, with Numba kernels."""

from fastmf import datasets, metrics, split, tune
from fastmf._validation import NonFiniteModelError
from fastmf._version import __version__
from fastmf.data.store import RatingStore
from fastmf.diagnose import Diagnosis, Finding, diagnose
from fastmf.model import MatrixFactorization, NotFittedError
from fastmf.plot import plot_history
from fastmf.ratings import IdMap, Ratings
from fastmf.recommend import FoldedUser, Recommendations
from fastmf.serialize import ModelFileError, load, save
from fastmf.train.guard import ModelStateError
from fastmf.train.lock import ModelBusyError
from fastmf.tune import SearchResult, grid_search, random_search

__all__ = [
    "Diagnosis",
    "Finding",
    "FoldedUser",
    "IdMap",
    "MatrixFactorization",
    "ModelBusyError",
    "ModelFileError",
    "ModelStateError",
    "NonFiniteModelError",
    "NotFittedError",
    "RatingStore",
    "Ratings",
    "Recommendations",
    "SearchResult",
    "__version__",
    "datasets",
    "diagnose",
    "grid_search",
    "load",
    "metrics",
    "plot_history",
    "random_search",
    "save",
    "split",
    "tune",
]
