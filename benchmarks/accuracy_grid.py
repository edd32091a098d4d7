"""``tune.auto`` against an exhaustive 200-candidate grid on the same validation split.

    python -m benchmarks.accuracy_grid                          # ml-latest-small, fold 0
    python -m benchmarks.accuracy_grid --data twin-ml-100k --share 0.1

The training part of fold 0 of ``benchmarks.accuracy_defaults`` is split once (a seeded 10%
validation part). Every grid candidate trains as ``tune.auto``'s candidates do (the "auto"
schedule of 40 epochs, early stopping with patience 8 on the validation part, its best epoch
kept); the grid's best is refitted on the whole training part at its best epoch. ``tune.auto``
then gets the same split (``cv=[(train, validation)]``) and ``--share`` of the grid's wall time.
Prints both searches' validation and test RMSE and seconds. ``--budget S`` skips the grid (about
17 minutes on ml-latest-small) and runs ``tune.auto`` alone with S seconds, against the grid's
figures of an earlier run.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

GRID = {
    "n_factors": [32, 64, 128, 256],
    "reg": [0.02, 0.04, 0.06, 0.08, 0.1],
    "learning_rate": [0.01, 0.02, 0.03, 0.05, 0.07],
    "reg_bias": [0.0, 0.05],
}  # 4 x 5 x 5 x 2 = 200 candidates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ml-latest-small")
    ap.add_argument("--share", type=float, default=0.1, help="tune.auto's budget: grid time x")
    ap.add_argument("--budget", type=float, default=None, help="no grid: tune.auto alone")
    args = ap.parse_args()
    from benchmarks.accuracy_defaults import splits
    from fastmf import tune

    train, test = splits(args.data, 1)[0]
    train = train.reset_index(drop=True)
    perm = np.random.default_rng(0).permutation(len(train))
    va, tr = np.sort(perm[: len(train) // 10]), np.sort(perm[len(train) // 10 :])
    if args.budget is not None:
        t0 = time.perf_counter()
        res = tune.auto(train, cv=[(tr, va)], budget_seconds=args.budget, random_state=0,
                        verbose=0)  # fmt: skip
        print(f"tune.auto: budget {args.budget:.0f} s, {len(res.results_)} candidates, "
              f"{len(res.members_)} averaged, {time.perf_counter() - t0:.0f} s, val "
              f"{res.best_score_:.4f}, test {-res.best_estimator_.score(test):.4f}: "
              f"{res.best_params_}")  # fmt: skip
        return
    _grid_and_auto(args, train, test, tr, va)


def _grid_and_auto(args, train, test, tr, va) -> None:
    from fastmf import MatrixFactorization, tune
    from fastmf.evaluate._auto import PATIENCE, _final_params

    fit_part, val_part = train.iloc[tr], train.iloc[va]
    quiet = {"random_state": 0, "verbose": 0}
    t0 = time.perf_counter()
    rows = []
    for values in itertools.product(*GRID.values()):
        kw = dict(zip(GRID, values, strict=True))
        m = MatrixFactorization(n_epochs=40, early_stopping=True, patience=PATIENCE, **kw, **quiet)
        m.fit(fit_part, validation=val_part)
        rows.append((-m.score(val_part), _final_params(m, 40, m.best_epoch_ or 40)))
    grid_s = time.perf_counter() - t0
    grid_val, best = min(rows, key=lambda r: r[0])
    t1 = time.perf_counter()
    grid_test = -MatrixFactorization(**best, **quiet).fit(train).score(test)
    grid_s += time.perf_counter() - t1
    print(f"grid: {len(rows)} candidates, {grid_s:.0f} s, best validation {grid_val:.4f}, "
          f"test {grid_test:.4f}: {best}", flush=True)  # fmt: skip
    budget = args.share * grid_s
    t2 = time.perf_counter()
    res = tune.auto(train, cv=[(tr, va)], budget_seconds=budget, random_state=0, verbose=0)
    auto_s = time.perf_counter() - t2
    auto_test = -res.best_estimator_.score(test)
    print(f"tune.auto: budget {budget:.0f} s, {len(res.results_)} candidates "
          f"({len(res.members_)} averaged), {auto_s:.0f} s, val {res.best_score_:.4f}, "
          f"test {auto_test:.4f}: {res.best_params_}")  # fmt: skip
    print("| search | candidates | seconds | validation RMSE | test RMSE |")
    print("|---|---|---|---|---|")
    print(f"| exhaustive grid | {len(rows)} | {grid_s:.0f} | {grid_val:.4f} | {grid_test:.4f} |")
    print(f"| `tune.auto` ({args.share:g} of its time) | {len(res.results_)} | {auto_s:.0f} | "
          f"{res.best_score_:.4f} | {auto_test:.4f} |")  # fmt: skip
    print(f"tune.auto vs grid: validation {100 * (res.best_score_ / grid_val - 1):+.2f}%, "
          f"test {100 * (auto_test / grid_test - 1):+.2f}%")  # fmt: skip


if __name__ == "__main__":
    main()
