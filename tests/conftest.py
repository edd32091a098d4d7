"""Shared fixtures: the real MovieLens data (through FASTMF_DATA) and small rating sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def movielens_small_path() -> Path:
    """The folder of the real ml-latest-small release, or a visible skip when it is absent."""
    root = os.environ.get("FASTMF_DATA")
    if not root:
        pytest.skip("FASTMF_DATA is not set: point it at the folder holding ml-latest-small/")
    path = Path(root) / "ml-latest-small"
    if not (path / "ratings.csv").is_file():
        pytest.skip(f"no ml-latest-small/ratings.csv under FASTMF_DATA={root}")
    return path


@pytest.fixture(scope="session")
def movielens_small(movielens_small_path: Path) -> pd.DataFrame:
    """The real ml-latest-small ratings with fastmf's column names."""
    df = pd.read_csv(movielens_small_path / "ratings.csv")
    return df.rename(columns={"userId": "user", "movieId": "item"})


def random_ratings(n_users: int, n_items: int, n: int, seed: int = 0) -> pd.DataFrame:
    """Distinct (user, item) pairs with half-star ratings: a small data set for exact tests."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, size=n, replace=False)
    return pd.DataFrame(
        {
            "user": (keys // n_items).astype(np.int64),
            "item": (keys % n_items).astype(np.int64),
            "rating": rng.integers(1, 11, n) / 2.0,
        }
    )


@pytest.fixture
def small_ratings() -> pd.DataFrame:
    return random_ratings(60, 40, 900)
