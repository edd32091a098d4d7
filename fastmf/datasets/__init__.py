"""Rating data sets: MovieLens releases and a synthetic generator with a known answer."""

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
