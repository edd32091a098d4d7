"""Rating data sets: MovieLens releases and a synthetic generator with a known answer."""

from fastmf.datasets.movielens import load_movielens, load_movies
from fastmf.datasets.synthetic import SyntheticTruth, synthetic

__all__ = ["SyntheticTruth", "load_movielens", "load_movies", "synthetic"]
