"""Old home of the MovieLens loaders: they live in ``fastmf.data.datasets`` now."""

from fastmf.data.datasets._movies import UITEM_GENRES
from fastmf.data.datasets._sources import DATA_ENV
from fastmf.data.datasets.movielens import load_movielens, load_movies
from fastmf.data.datasets.releases import RELEASES, Release
from fastmf.errors import DownloadError

__all__ = [
    "DATA_ENV",
    "RELEASES",
    "UITEM_GENRES",
    "DownloadError",
    "Release",
    "load_movielens",
    "load_movies",
]
