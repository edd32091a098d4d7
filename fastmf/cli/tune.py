"""``fastmf tune``: search the parameters within a time budget and save the best model."""

from __future__ import annotations

import argparse
import math
from typing import Any

from fastmf.cli._common import (
    UsageError,
    add_format_option,
    check_dataset,
    check_output_file,
    fraction,
    to_json,
)


def register(subparsers: Any) -> None:
    """Add the ``tune`` subcommand."""
    p = subparsers.add_parser(
        "tune",
        help="tune λ, η, the factors, reg_bias and the epochs within a time budget",
        description=(
            "Successive halving over the parameters on a validation split carved from the "
            "training part (fastmf.tune.auto), within --budget seconds, compiling included; "
            "the best candidates are refitted on the whole training part and averaged into "
            "one model (--ensemble caps them), scored on a held-out test part, which the "
            "search never sees."
        ),
    )
    p.add_argument(
        "--dataset",
        required=True,
        metavar="NAME_OR_PATH",
        help="a MovieLens release name, a path to its zip, folder or ratings file, or a "
        "synthetic twin (synthetic-ml-100k, ...)",
    )
    p.add_argument("--budget", type=float, default=60.0, help="seconds for the search (default 60)")
    p.add_argument(
        "--test-size", type=fraction, default=0.1,
        help="share of the ratings held out for the final test (default 0.1)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the search")
    p.add_argument(
        "--ensemble", type=int, default=8,
        help="the most refits averaged into the saved model (default 8; 1: the best alone)",
    )  # fmt: skip
    p.add_argument("--save", metavar="FILE", help="save the best model there")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_format_option(p, json_alias=True)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse a budget, a data set or an output file that cannot work, before any data."""
    if not math.isfinite(args.budget) or args.budget <= 0:
        raise UsageError(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.ensemble < 1:
        raise UsageError(f"--ensemble must be an int >= 1 (1: no average), got {args.ensemble}")
    check_dataset(args.dataset)
    if args.save:
        check_output_file(args.save, "--save")


def run(args: argparse.Namespace) -> int:
    """Split, search, score the best model on the test part, and save it."""
    from fastmf._stats import mae, rmse
    from fastmf.cli.train import load_dataset
    from fastmf.data.split import train_test_split
    from fastmf.evaluate.tune import auto

    df, _ = load_dataset(args.dataset, args.seed)
    train, test = train_test_split(df, test_size=args.test_size, random_state=args.seed)
    res = auto(
        train, budget_seconds=args.budget, random_state=args.seed,
        verbose=0 if args.quiet or args.format != "table" else 1, ensemble=args.ensemble,
    )  # fmt: skip
    model = res.best_estimator_
    pred = model.predict(test)
    y = test["rating"].to_numpy(dtype=float)
    result = {
        "dataset": args.dataset,
        "n_candidates": len(res.results_),
        "best_params": res.best_params_,
        "n_members": len(res.members_),
        "n_factors": int(model.n_factors_),
        "val_rmse": res.best_score_,
        "test_rmse": rmse(y, pred),
        "test_mae": mae(y, pred),
        "saved": args.save,
    }
    if args.save:
        model.save(args.save)
    if args.format == "json":
        print(to_json(result))
        return 0
    if args.format == "csv":
        import pandas as pd

        print(pd.DataFrame([result]).to_csv(index=False), end="")
        return 0
    print(f"{result['n_candidates']} candidates in {args.budget:g} s on {args.dataset}")
    print(f"best: {res.best_params_}")
    if len(res.members_) > 1:
        print(f"model: the average of {len(res.members_)} refits ({model.n_factors_} factors)")
    print(f"validation RMSE {res.best_score_:.4f}")
    print(f"test RMSE {result['test_rmse']:.4f}  MAE {result['test_mae']:.4f}")
    if args.save:
        print(f"saved to {args.save}")
    return 0
