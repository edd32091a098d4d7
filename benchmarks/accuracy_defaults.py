"""The measurements behind the data-aware defaults: the best setting of a grid against the
defaults, over data of several sizes and densities.

    python -m benchmarks.accuracy_defaults                              # the table of the README
    python -m benchmarks.accuracy_defaults --data ml-latest-small --folds 2

Data: ``ml-latest-small`` (``$FASTMF_DATA``; 5 folds of a seeded permutation, seed 1, other
than the 90/10 splits the tests use), ``twin-ml-100k`` (``fastmf.datasets.synthetic`` like
ml-100k on whole stars, 5 folds) and the ML-25M-shaped twins ``1M``, ``5M``, ``25M``
(``$FASTMF_TWIN_DIR/synth_<size>.npz``, their own 90/10 split; a few confirming fits only).
Every fit: ``random_state=0``, all cores. Prints a markdown table, and the full grid as JSON
into ``benchmarks/results/accuracy_defaults.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

GRID = {
    "n_factors": [64, 128, 256],
    "reg": [0.05, 0.08, 0.1],
    "n_epochs": [20, 40],
    "learning_rate": [0.03, 0.05],
}
TWIN_GRID = [
    {"n_factors": 64, "reg": 0.05, "n_epochs": 20},
    {"n_factors": 64, "reg": 0.065, "n_epochs": 30},
    {"n_factors": 128, "reg": 0.065, "n_epochs": 30},
    {"n_factors": 128, "reg": 0.08, "n_epochs": 40},
]


def splits(name: str, n_folds: int):
    """(train, test) DataFrames of a data set by name."""
    import pandas as pd

    if name in ("1M", "5M", "25M"):
        root = Path(os.environ.get("FASTMF_TWIN_DIR", "/tmp/fastmf-twin"))
        z = np.load(root / f"synth_{name}.npz")
        n = int(z["n_train"])
        df = pd.DataFrame({"user": z["user"], "item": z["item"], "rating": z["rating"]})
        return [(df.iloc[:n], df.iloc[n:])]
    if name == "ml-latest-small":
        path = Path(os.environ["FASTMF_DATA"]) / "ml-latest-small" / "ratings.csv"
        df = pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item"})
        df = df[["user", "item", "rating"]]
    elif name == "twin-ml-100k":
        from fastmf.datasets import synthetic

        df = synthetic(like="ml-100k", scale="whole", random_state=0)[["user", "item", "rating"]]
    else:
        raise ValueError(f"unknown data set {name!r}")
    parts = np.array_split(np.random.default_rng(1).permutation(len(df)), 5)
    out = []
    for k in range(min(n_folds, 5)):
        train = np.concatenate([p for j, p in enumerate(parts) if j != k])
        out.append((df.iloc[train], df.iloc[parts[k]]))
    return out


def score(pairs, **kw) -> tuple[float, float]:
    """Mean test RMSE over the splits and mean seconds a fit."""
    from fastmf import MatrixFactorization

    errs, secs = [], []
    for train, test in pairs:
        t0 = time.perf_counter()
        m = MatrixFactorization(random_state=0, verbose=0, **kw).fit(train)
        secs.append(time.perf_counter() - t0)
        errs.append(-m.score(test))
    return float(np.mean(errs)), float(np.mean(secs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ml-latest-small,twin-ml-100k,1M")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    rows, full = [], {}
    for name in args.data.split(","):
        pairs = splits(name, args.folds)
        default, t_default = score(pairs)
        if len(pairs) == 1:
            grid = TWIN_GRID
        else:
            grid = [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
        results = [(score(pairs, **g), g) for g in grid]
        full[name] = [{"params": g, "rmse": r, "seconds": s} for (r, s), g in results]
        (best, t_best), best_g = min(results, key=lambda x: x[0][0])
        rows.append((name, len(pairs), default, t_default, best, t_best, best_g))
        print(f"{name}: defaults {default:.4f}, best {best:.4f} with {best_g}", flush=True)
    print("| data | splits | defaults RMSE | s/fit | best grid RMSE | s/fit | best setting | gap |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, d, td, b, tb, g in rows:
        print(f"| {name} | {n} | {d:.4f} | {td:.2f} | {b:.4f} | {tb:.2f} | {g} | "
              f"{100 * (d / b - 1):+.2f}% |")  # fmt: skip
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "accuracy_defaults.json").write_text(json.dumps(full, indent=1))


if __name__ == "__main__":
    main()
