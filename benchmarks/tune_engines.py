"""Two engines for ``tune.auto`` in the same budget: the hand-written asynchronous successive
halving it uses, and Optuna (TPE sampler with successive-halving pruning) over the same space,
the same validation split and the same fits.

    python -m benchmarks.tune_engines --budget 20 --folds 2

On ml-latest-small (``$FASTMF_DATA``; folds of a seeded permutation, seed 1), each engine gets
the training part of a fold and ``--budget`` seconds; the table gives the test RMSE of the model
it returns, its candidates and its wall time. Optuna is an optional dependency (the ``tune``
extra); without it only the halving runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.accuracy_defaults import splits


def optuna_auto(train, budget: float, seed: int):
    """The same search with Optuna: TPE draws, pruning at the same rungs, then the refit."""
    import optuna

    from fastmf import MatrixFactorization
    from fastmf.data.coerce import to_ratings, validation_frame
    from fastmf.evaluate import _auto

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t_start = time.perf_counter()
    deadline = t_start + budget
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(train))
    n_val = round(0.1 * len(train))
    part = to_ratings(train.iloc[np.sort(perm[n_val:])])
    val = validation_frame(train.iloc[np.sort(perm[:n_val])])
    everything = to_ratings(train)
    reserve = {"s": 0.0}
    best = {}

    def objective(trial):
        params = {
            "reg": trial.suggest_float("reg", 0.01, 0.2, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.08, log=True),
            "n_factors": trial.suggest_categorical("n_factors", list(_auto.FACTORS)),
            "reg_bias": trial.suggest_float("reg_bias", 1e-4, 0.1, log=True),
            "n_epochs": trial.suggest_categorical("n_epochs", list(_auto.SCHEDULES)),
        }
        t0 = time.perf_counter()

        def watch(model, row):
            trial.report(row["val_rmse"], int(row["epoch"]))
            late = time.perf_counter() + max(reserve["s"], 1.3 * (time.perf_counter() - t0))
            return late >= deadline or trial.should_prune()

        m = MatrixFactorization(**params, random_state=seed, verbose=0, early_stopping=True,
                                callbacks=[watch])  # fmt: skip
        m.fit(part, validation=val)
        score = float(m.history_["val_rmse"].min())
        secs = (time.perf_counter() - t0) / max(m.n_epochs_done_, 1)
        if not best or score < best["score"]:
            best.update(score=score, params=params, epochs=m.best_epoch_ or m.n_epochs_done_,
                        secs=secs)  # fmt: skip
            reserve["s"] = 1.3 * secs * best["epochs"] * len(everything) / len(part)
        return score

    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=4, reduction_factor=3),
    )
    while time.perf_counter() + reserve["s"] + 0.5 < deadline:
        study.optimize(objective, n_trials=1)
    p = dict(best["params"])
    schedule = p.pop("n_epochs")
    decay = 0.8 ** (20 / schedule)
    m = MatrixFactorization(**p, n_epochs=int(best["epochs"]), lr_schedule="exponential",
                            lr_decay=decay, random_state=seed, verbose=0)  # fmt: skip
    m.fit(everything)
    return m, len(study.trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--data", default="ml-latest-small")
    args = ap.parse_args()
    from fastmf import MatrixFactorization, tune

    MatrixFactorization(n_epochs=1, verbose=0).fit(splits(args.data, 1)[0][0].iloc[:2000])
    print("| fold | engine | test RMSE | candidates | wall s |")
    print("|---|---|---|---|---|")
    for k, (train, test) in enumerate(splits(args.data, args.folds)):
        t0 = time.perf_counter()
        res = tune.auto(train, budget_seconds=args.budget, random_state=k, verbose=0)
        wall = time.perf_counter() - t0
        print(f"| {k} | halving | {-res.best_estimator_.score(test):.4f} | "
              f"{len(res.results_)} | {wall:.1f} |", flush=True)  # fmt: skip
        try:
            t0 = time.perf_counter()
            model, n = optuna_auto(train, args.budget, k)
            wall = time.perf_counter() - t0
            print(f"| {k} | optuna TPE + halving pruner | {-model.score(test):.4f} | {n} | "
                  f"{wall:.1f} |", flush=True)  # fmt: skip
        except ImportError:
            print(f"| {k} | optuna | not installed | | |")


if __name__ == "__main__":
    main()
