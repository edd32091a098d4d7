"""Old home of the train/test splits: they live in ``fastmf.data.split`` now."""

from fastmf.data.split import (
    RandomState,
    Unknown,
    kfold,
    time_split,
    train_test_split,
    user_holdout,
)

__all__ = ["RandomState", "Unknown", "kfold", "time_split", "train_test_split", "user_holdout"]
