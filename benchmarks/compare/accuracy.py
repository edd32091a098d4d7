"""``python -m benchmarks.compare.accuracy``: the accuracy table users compare.

Test RMSE and time of fastmf's defaults and ``tune.auto``, Surprise's SVD (its defaults, and
tuned with its own ``GridSearchCV``; one thread), cornac's MF (its defaults), on folds of
ml-latest-small (``$FASTMF_DATA``) and of the ml-100k twin (``fastmf.datasets.synthetic``; the
folds of ``benchmarks.accuracy_defaults``). LensKit's release wants pandas < 3 and is not in
this environment; it is skipped with that reason. A library that is not installed is skipped.

    python -m benchmarks.compare.accuracy --data ml-latest-small,twin-ml-100k --folds 5
"""

from __future__ import annotations

import argparse
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


LIBRARIES = {
    "fastmf defaults": fastmf_defaults,
    "fastmf tune.auto": fastmf_auto,
    "Surprise SVD defaults": surprise_svd,
    "Surprise SVD GridSearchCV": surprise_svd_tuned,
    "cornac MF": cornac_mf,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ml-latest-small,twin-ml-100k")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds for tune.auto")
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    args = ap.parse_args()
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
    print("| all | LensKit biased ALS | skipped: its release wants pandas < 3 | | |")


if __name__ == "__main__":
    main()
