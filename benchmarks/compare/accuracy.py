"""``python -m benchmarks.compare.accuracy``: the accuracy table users compare.

Test RMSE and time of fastmf's defaults and ``tune.auto``, Surprise's SVD (its defaults, and
tuned with its own ``GridSearchCV``; one thread), cornac's MF (its defaults), on folds of
ml-latest-small (``$FASTMF_DATA``) and of the ml-100k twin (``fastmf.datasets.synthetic``; the
folds of ``benchmarks.accuracy_defaults``), and LensKit's biased ALS (its defaults) run by
another interpreter given with ``--python lenskit=PATH`` (its release wants pandas < 3: build it
a venv of its own; the folds go to it as files and its predictions come back). A library that is
not installed is skipped.

    python -m benchmarks.compare.accuracy --data ml-latest-small,twin-ml-100k --folds 5 \
        --python lenskit=/tmp/lk/bin/python
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np

from benchmarks.accuracy_defaults import splits

SURPRISE_GRID = {"n_factors": [50, 100], "reg_all": [0.02, 0.05, 0.1], "lr_all": [0.005, 0.01]}


def _rmse(pred, test) -> float:
    lo, hi = float(test.rating.min()), float(test.rating.max())
    err = np.clip(pred, lo, hi) - test["rating"].to_numpy(float)
    return float(np.sqrt(np.mean(err**2)))


def fastmf_defaults(train, test, budget):
    from fastmf import MatrixFactorization

    m = MatrixFactorization(random_state=0, verbose=0).fit(train)
    return -m.score(test)


def fastmf_auto(train, test, budget):
    from fastmf import tune

    res = tune.auto(train, budget_seconds=budget, random_state=0, verbose=0)
    return -res.best_estimator_.score(test)


def _surprise_data(train):
    from surprise import Dataset, Reader

    lo, hi = float(train.rating.min()), float(train.rating.max())
    return Dataset.load_from_df(train[["user", "item", "rating"]], Reader(rating_scale=(lo, hi)))


def _surprise_predict(algo, test):
    return np.array([algo.predict(u, i).est for u, i in zip(test.user, test.item, strict=True)])


def surprise_svd(train, test, budget):
    from surprise import SVD

    algo = SVD(random_state=0)
    algo.fit(_surprise_data(train).build_full_trainset())
    return _rmse(_surprise_predict(algo, test), test)


def surprise_svd_tuned(train, test, budget):
    from surprise import SVD
    from surprise.model_selection import GridSearchCV

    data = _surprise_data(train)
    gs = GridSearchCV(SVD, SURPRISE_GRID, measures=["rmse"], cv=3, n_jobs=1)
    gs.fit(data)
    algo = SVD(random_state=0, **gs.best_params["rmse"])
    algo.fit(data.build_full_trainset())
    return _rmse(_surprise_predict(algo, test), test)


def cornac_mf(train, test, budget):
    import cornac
    from cornac.models import MF

    triples = list(zip(train.user.astype(str), train.item.astype(str), train.rating, strict=True))
    ds = cornac.data.Dataset.from_uir(triples, seed=0)
    model = MF(k=10, max_iter=20, learning_rate=0.01, lambda_reg=0.02, use_bias=True, seed=0)
    model.fit(ds)
    uid, iid = ds.uid_map, ds.iid_map
    mu = float(train.rating.mean())
    pred = np.array([
        model.score(uid[u], iid[i]) if u in uid and i in iid else mu
        for u, i in zip(test.user.astype(str), test.item.astype(str), strict=True)
    ])  # fmt: skip
    return _rmse(pred, test)


LENSKIT_SCRIPT = """
import sys, time, numpy as np, pandas as pd
from lenskit.als import BiasedMFScorer
from lenskit.data import from_interactions_df
z = np.load(sys.argv[1])
t0 = time.perf_counter()
tr = pd.DataFrame({"user_id": z["u"], "item_id": z["i"], "rating": z["r"]})
scorer = BiasedMFScorer()
scorer.train(from_interactions_df(tr, user_col="user_id", item_col="item_id", rating_col="rating"))
b = scorer.bias
u = scorer.users.numbers(z["tu"], missing="negative")
i = scorer.items.numbers(z["ti"], missing="negative")
pu = np.where(u[:, None] >= 0, scorer.user_embeddings[np.maximum(u, 0)], 0.0)
qi = np.where(i[:, None] >= 0, scorer.item_embeddings[np.maximum(i, 0)], 0.0)
bu = np.where(u >= 0, b.user_biases[np.maximum(u, 0)], 0.0)
bi = np.where(i >= 0, b.item_biases[np.maximum(i, 0)], 0.0)
np.save(sys.argv[2], b.global_bias + bu + bi + np.sum(pu * qi, axis=1))
"""
PYTHONS: dict[str, str] = {}  # library -> interpreter, from --python


def lenskit_als(train, test, budget):
    """LensKit's ``BiasedMFScorer`` with its defaults (50 factors, 10 ALS epochs, λ 0.1,
    damped-mean biases), trained by the interpreter of ``--python lenskit=...``."""
    if "lenskit" not in PYTHONS:
        raise ImportError("pass --python lenskit=PATH", name="lenskit")
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "fold.npz"), os.path.join(tmp, "pred.npy")
        np.savez(data, u=train.user.to_numpy(), i=train.item.to_numpy(),
                 r=train.rating.to_numpy(float), tu=test.user.to_numpy(),
                 ti=test.item.to_numpy())  # fmt: skip
        subprocess.run([PYTHONS["lenskit"], "-c", LENSKIT_SCRIPT, data, out], check=True)
        return _rmse(np.load(out), test)


LIBRARIES = {
    "fastmf defaults": fastmf_defaults,
    "fastmf tune.auto": fastmf_auto,
    "Surprise SVD defaults": surprise_svd,
    "Surprise SVD GridSearchCV": surprise_svd_tuned,
    "cornac MF": cornac_mf,
    "LensKit biased ALS": lenskit_als,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ml-latest-small,twin-ml-100k")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds for tune.auto")
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--python", action="append", default=[], help="LIBRARY=INTERPRETER")
    args = ap.parse_args()
    PYTHONS.update(kv.split("=", 1) for kv in args.python)
    from fastmf import MatrixFactorization

    MatrixFactorization(n_epochs=1, verbose=0).fit(splits("twin-ml-100k", 1)[0][0].iloc[:2000])
    print("| data | library | mean test RMSE | ± | s per fold |")
    print("|---|---|---|---|---|")
    for name in args.data.split(","):
        pairs = splits(name, args.folds)
        for lib in args.libraries.split(","):
            errs, secs = [], []
            try:
                for train, test in pairs:
                    t0 = time.perf_counter()
                    errs.append(LIBRARIES[lib](train, test, args.budget))
                    secs.append(time.perf_counter() - t0)
            except ImportError as exc:
                print(f"| {name} | {lib} | skipped: {exc.name} is not installed | | |")
                continue
            print(f"| {name} ({len(pairs)} folds) | {lib} | {np.mean(errs):.4f} | "
                  f"{np.std(errs):.4f} | {np.mean(secs):.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
