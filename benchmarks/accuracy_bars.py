"""The accuracy bars of the defaults and of ``tune.auto``, on the data this machine holds.

    python -m benchmarks.accuracy_bars --budget 20

- the defaults on ml-latest-small, seeded 90/10 splits (seeds 0-9) of two kinds: a permutation
  of the ratings, and one that holds out 10% of each user's ratings (every user stays in
  training): test RMSE each, and the worst;
- the defaults over the five folds of the ml-100k twin (``fastmf.datasets.synthetic`` like
  ml-100k on whole stars), the stand-in for ml-100k's u1-u5, and ``tune.auto(train,
  budget_seconds=B, random_state=0)`` on each fold: test RMSE and the call's wall time;
- ``MatrixFactorization(n_factors=8, reg=0.03, n_epochs=60)`` on synthetic data with string ids
  and a known answer: test RMSE over the hidden model's.

``--folds-dir DIR`` runs the defaults and ``tune.auto`` on a directory of folds in ml-100k's own
layout instead of the twin's (``u1.base``/``u1.test`` ... ``u5.*``: tab-separated user, item,
rating, timestamp), for a check on a release this project does not ship.

The part ``mls-auto`` (skipped unless ``--with mls-auto``: five calls of the budget and more)
runs the defaults and ``tune.auto`` on ml-latest-small's five folds of
``benchmarks.accuracy_defaults`` and on the per-user split of seed 9 (the hardest seen).
``--ensemble N`` is passed to ``tune.auto`` (the most refits it averages).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _mls():
    import pandas as pd

    path = Path(os.environ["FASTMF_DATA"]) / "ml-latest-small" / "ratings.csv"
    return pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item"})


def _user_split(df, seed: int):
    """(train, test): the 10% of each user's ratings with the smallest seeded draws held out."""
    import pandas as pd

    draw = np.random.default_rng(seed).random(len(df))
    users = df["user"].to_numpy()
    rank = pd.Series(draw).groupby(users).rank(method="first").to_numpy()
    n = df.groupby("user")["user"].transform("size").to_numpy()
    test = rank <= np.floor(0.1 * n)
    return df[~test], df[test]


def _folds(folds_dir: str | None):
    """The five (train, test) folds: ml-100k's own from a directory, or the twin's."""
    import pandas as pd

    from benchmarks.accuracy_defaults import splits

    if folds_dir is None:
        return splits("twin-ml-100k", 5)
    cols = ["user", "item", "rating", "timestamp"]

    def read(name):
        return pd.read_csv(Path(folds_dir) / name, sep="\t", names=cols)[cols[:3]]

    return [(read(f"u{k}.base"), read(f"u{k}.test")) for k in range(1, 6)]


def _auto_on(name, splits, budget, ensemble) -> None:
    """The defaults and ``tune.auto`` on each (train, test): test RMSE, members, wall time."""
    from fastmf import MatrixFactorization, tune

    d, a, walls = [], [], []
    for k, (train, test) in enumerate(splits):
        d.append(-MatrixFactorization(random_state=0, verbose=0).fit(train).score(test))
        t0 = time.perf_counter()
        res = tune.auto(train, budget_seconds=budget, random_state=0, verbose=0,
                        ensemble=ensemble)  # fmt: skip
        walls.append(time.perf_counter() - t0)
        a.append(-res.best_estimator_.score(test))
        print(f"{name} fold {k}: defaults {d[-1]:.4f}, tune.auto {a[-1]:.4f} "
              f"({len(res.results_)} candidates, {len(res.members_)} averaged, "
              f"{walls[-1]:.1f} s)", flush=True)  # fmt: skip
    print(f"{name} mean: defaults {np.mean(d):.5f}, tune.auto {np.mean(a):.5f}, "
          f"longest call {max(walls):.1f} s", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--folds-dir", default=None, help="ml-100k's u1-u5 in its own layout")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: mls,folds,oracle")
    ap.add_argument("--with", dest="extra", default="", help="parts run on request: mls-auto")
    ap.add_argument("--ensemble", type=int, default=8, help="tune.auto's ensemble cap")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    from fastmf import MatrixFactorization
    from fastmf.datasets import synthetic

    if "mls" not in skip:
        df = _mls()
        for kind in ("permutation", "per user"):
            got = []
            for seed in range(10):
                if kind == "per user":
                    train, test = _user_split(df, seed)
                else:
                    perm = np.random.default_rng(seed).permutation(len(df))
                    test, train = df.iloc[perm[: len(df) // 10]], df.iloc[perm[len(df) // 10 :]]
                m = MatrixFactorization(random_state=0, verbose=0).fit(train)
                got.append(-m.score(test))
                print(f"ml-latest-small 90/10 {kind} seed {seed}: defaults {got[-1]:.4f}",
                      flush=True)  # fmt: skip
            print(f"ml-latest-small {kind}: mean {np.mean(got):.4f}, worst {max(got):.4f}")
    if "folds" not in skip:
        name = "twin-ml-100k" if args.folds_dir is None else "folds-dir"
        _auto_on(name, _folds(args.folds_dir), args.budget, args.ensemble)
    if "mls-auto" in args.extra.split(","):
        from benchmarks.accuracy_defaults import splits

        _auto_on("ml-latest-small", splits("ml-latest-small", 5), args.budget, args.ensemble)
        df = _mls()[["user", "item", "rating"]]
        _auto_on("ml-latest-small per-user seed 9", [_user_split(df, 9)], args.budget,
                 args.ensemble)  # fmt: skip
    if "oracle" not in skip:
        for seed in (1, 2, 3):
            df, truth = synthetic(n_users=400, n_items=300, n_ratings=40_000, rank=4, noise=0.3,
                                  scale=None, random_state=seed, return_truth=True)  # fmt: skip
            df = df.sample(frac=1.0, random_state=0)
            oracle = truth.rmse(df.iloc[36_000:])
            df["user"] = "u" + df["user"].astype(str)
            df["item"] = "i" + df["item"].astype(str)
            m = MatrixFactorization(n_factors=8, reg=0.03, n_epochs=60, random_state=0, verbose=0)
            got = -m.fit(df.iloc[:36_000]).score(df.iloc[36_000:])
            print(f"known answer seed {seed}: {got:.4f} vs oracle {oracle:.4f}: "
                  f"{100 * (got / oracle - 1):+.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
