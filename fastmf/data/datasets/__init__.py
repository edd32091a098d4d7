"""Rating data sets: MovieLens releases and a synthetic generator with a known answer."""

from fastmf.data.datasets.movielens import load_movielens, load_movies
from fastmf.data.datasets.releases import RELEASES
from fastmf.data.datasets.synthetic import SyntheticTruth, synthetic
from fastmf.errors import DownloadError

__all__ = [
    "RELEASES",
    "DownloadError",
    "SyntheticTruth",
    "load_movielens",
    "load_movies",
    "synthetic",
]
