"""Ratings in: the ratings container and its id maps, input coercion, train/test splits, and the
data sets (MovieLens releases and synthetic twins) in ``fastmf.data.datasets``."""

from fastmf.data.ids import IdMap
from fastmf.data.ratings import Ratings
from fastmf.data.split import kfold, time_split, train_test_split, user_holdout

__all__ = ["IdMap", "Ratings", "kfold", "time_split", "train_test_split", "user_holdout"]
