"""Rating data sets: MovieLens releases and a synthetic generator with a known answer.

They live in ``fastmf.data.datasets`` now; this package keeps the old import paths working.
"""

# The submodule shims are imported first, so that importing one later cannot rebind a name here
# (``fastmf.datasets.synthetic`` stays the function, as it always was).
from fastmf.datasets._download import DownloadError
from fastmf.datasets.movielens import RELEASES, load_movielens, load_movies
from fastmf.datasets.synthetic import SyntheticTruth, synthetic

__all__ = [
    "RELEASES",
    "DownloadError",
    "SyntheticTruth",
    "load_movielens",
    "load_movies",
    "synthetic",
]
