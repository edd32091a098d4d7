"""The data every library in a run sees: one dataset, one seeded train/test split, dense ids.

A dataset is named by a string:

- ``synthetic-1m``, ``synthetic-5m``, ``synthetic-25m``: the synthetic ML-25M twin scaled to 1M,
  5M or 25M ratings; ``synthetic:N`` scales it to N ratings. The hidden model's RMSE on the test
  set (the best any library can reach) is recorded with it.
- ``ml-latest-small``: the real ratings under ``$FASTMF_DATA/ml-latest-small``.
- ``movielens:NAME``: any MovieLens release through ``fastmf.datasets.load_movielens(NAME)``.

The split is written once as ``.npy`` arrays into a work folder; each library's process loads them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SYNTHETIC_SIZES = {
    "synthetic-1m": 1_000_000,
    "synthetic-5m": 5_000_000,
    "synthetic-25m": 25_000_000,
}

ARRAYS = ("user", "item", "rating")


@dataclass
class Split:
    """A train/test split with dense 0-based user and item indices (int32) and float32 ratings."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    n_users: int
    n_items: int
    meta: dict

    def save(self, folder: Path) -> None:
        """Write the arrays and the metadata into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        for part, arrays in (("train", self.train), ("test", self.test)):
            for name in ARRAYS:
                np.save(folder / f"{part}_{name}.npy", arrays[name])
        meta = dict(self.meta, n_users=self.n_users, n_items=self.n_items)
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Split:
        """Read a split written by :meth:`save`."""
        meta = json.loads((Path(folder) / "meta.json").read_text())
        parts = {
            part: {name: np.load(Path(folder) / f"{part}_{name}.npy") for name in ARRAYS}
            for part in ("train", "test")
        }
        return cls(parts["train"], parts["test"], meta["n_users"], meta["n_items"], meta)

    def frame(self, part: str) -> pd.DataFrame:
        """The part ("train" or "test") as a ratings DataFrame with columns user, item, rating."""
        arrays = self.train if part == "train" else self.test
        return pd.DataFrame({name: arrays[name] for name in ARRAYS})


def load_dataset(name: str, *, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The ratings named by ``name`` (see the module docstring) and a description of them."""
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a string such as 'synthetic-1m', got {name!r}")
    t0 = time.perf_counter()
    if name in SYNTHETIC_SIZES or name.startswith("synthetic:"):
        n = SYNTHETIC_SIZES.get(name)
        if n is None:
            text = name.split(":", 1)[1].replace("_", "")
            try:
                n = int(float(text))
            except ValueError:
                raise ValueError(
                    f"dataset {name!r}: expected synthetic:N with N a number of ratings, "
                    "e.g. synthetic:2000000"
                ) from None
        from fastmf.datasets.synthetic import synthetic

        df, truth = synthetic(like="ml-25m", n_ratings=n, random_state=seed, return_truth=True)
        meta = {
            "dataset": name,
            "kind": "synthetic twin of ml-25m",
            "noise": truth.noise,
            "rank": truth.rank,
            "_truth": truth,
        }
    elif name == "ml-latest-small":
        root = os.environ.get("FASTMF_DATA")
        if not root:
            raise FileNotFoundError(
                "dataset 'ml-latest-small' needs FASTMF_DATA set to the folder holding "
                "ml-latest-small/ (export FASTMF_DATA=/path/to/data)"
            )
        path = Path(root) / "ml-latest-small" / "ratings.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; check FASTMF_DATA={root}")
        raw = pd.read_csv(path)
        df = raw.rename(columns={"userId": "user", "movieId": "item"})[["user", "item", "rating"]]
        meta = {"dataset": name, "kind": "MovieLens (real)", "path": str(path)}
    elif name.startswith("movielens:"):
        release = name.split(":", 1)[1]
        from fastmf.datasets import load_movielens  # lazy: the loader is optional here

        df = load_movielens(release)[["user", "item", "rating"]]
        meta = {"dataset": name, "kind": "MovieLens (real)", "release": release}
    else:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {sorted(SYNTHETIC_SIZES)}, synthetic:N, "
            "ml-latest-small or movielens:NAME (e.g. movielens:ml-1m)"
        )
    meta["load_seconds"] = round(time.perf_counter() - t0, 3)
    meta["n_ratings"] = len(df)
    return df, meta


def make_split(df: pd.DataFrame, meta: dict, *, test_fraction: float = 0.1, seed: int = 0):
    """A seeded random split; test ratings of users or items absent from train are dropped.

    Ids are made dense (0..n-1, in order of first appearance in train) so every library gets the
    same integer indices. For synthetic data the hidden model's test RMSE is recorded.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    n = len(df)
    is_test = rng.random(n) < test_fraction
    # Shuffle the training order: peers that visit ratings in the given order (cornac, LIBMF's
    # Python binding) then see them in random order, as their documentation assumes.
    train_rows = rng.permutation(np.flatnonzero(~is_test))
    test_rows = np.flatnonzero(is_test)
    users = df["user"].to_numpy()
    items = df["item"].to_numpy()
    u_codes, u_uniques = pd.factorize(users[train_rows])
    i_codes, i_uniques = pd.factorize(items[train_rows])
    u_test = pd.Index(u_uniques).get_indexer(users[test_rows])
    i_test = pd.Index(i_uniques).get_indexer(items[test_rows])
    known = (u_test >= 0) & (i_test >= 0)
    ratings = df["rating"].to_numpy(dtype=np.float32)
    train = {
        "user": u_codes.astype(np.int32),
        "item": i_codes.astype(np.int32),
        "rating": ratings[train_rows],
    }
    test = {
        "user": u_test[known].astype(np.int32),
        "item": i_test[known].astype(np.int32),
        "rating": ratings[test_rows[known]],
    }
    meta = dict(meta)
    truth = meta.pop("_truth", None)
    if truth is not None:
        kept = test_rows[known]
        test_df = pd.DataFrame({"user": users[kept], "item": items[kept], "rating": ratings[kept]})
        meta["truth_test_rmse"] = round(truth.rmse(test_df), 5)
    meta.update(
        test_fraction=test_fraction,
        split_seed=seed,
        n_train=int(train_rows.size),
        n_test=int(known.sum()),
        n_test_dropped_unknown=int((~known).sum()),
        rating_min=float(ratings[train_rows].min()),
        rating_max=float(ratings[train_rows].max()),
    )
    return Split(train, test, len(u_uniques), len(i_uniques), meta)
