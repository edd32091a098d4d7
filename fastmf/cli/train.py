"""``fastmf train``: fit a model on a data set and print its losses epoch by epoch."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from fastmf.model import MatrixFactorization
from fastmf.split import train_test_split

DEFAULT_DATASET = "synthetic-ml-100k"

# command-line option -> estimator parameter, type
_PARAMS = {
    "n_factors": int,
    "n_epochs": int,
    "batch_size": int,
    "learning_rate": float,
    "reg": float,
    "reg_bias": float,
    "optimizer": str,
    "biases": str,
    "init_std": float,
    "lr_schedule": str,
    "lr_decay": float,
    "patience": int,
    "n_jobs": int,
    "dtype": str,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model and print base, regularization and total loss per epoch",
        description=(
            "Train biased matrix factorization on a data set, hold out a test part, and print "
            "a row per epoch: base loss, regularization loss, their total, and validation error."
        ),
    )
    p.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=(
            "'synthetic-ml-100k' (default, no download), 'synthetic-ml-1m', 'synthetic-ml-25m', "
            "..., a MovieLens release name (ml-100k, ml-1m, ml-25m, ml-latest-small, ...) or a "
            "path to a release's zip, folder or ratings file"
        ),
    )
    p.add_argument("--test-size", type=float, default=0.1, help="held-out fraction (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the split and the model")
    defaults = MatrixFactorization().get_params()
    for name, kind in _PARAMS.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=kind, default=defaults[name], help=f"default {defaults[name]}")
    p.add_argument("--early-stopping", action="store_true", help="stop when validation stalls")
    p.add_argument("--save", metavar="FILE", help="write the trained model to FILE")
    p.add_argument("--plot", metavar="FILE", help="write the training curves to FILE (PNG, SVG)")
    p.add_argument("--diagnose", action="store_true", help="print what the history shows")
    p.add_argument("--quiet", action="store_true", help="print only the final figures")
    p.set_defaults(func=run)


def load_dataset(name: str, seed: int = 0) -> tuple[pd.DataFrame, dict | None]:
    """Ratings and, where the data has them, item titles, for a ``--dataset`` value."""
    if name.startswith("synthetic"):
        from fastmf.datasets import synthetic

        like = name.partition("-")[2] or "ml-100k"
        return synthetic(like=like, random_state=seed), None
    from fastmf.datasets import load_movielens, load_movies

    ratings = load_movielens(name)
    try:
        movies = load_movies(name)
    except (FileNotFoundError, ValueError):
        movies = None
    titles = None if movies is None else dict(zip(movies["item"], movies["title"]))
    return ratings, titles


class _EpochTable:
    """Prints one row per epoch as training goes (a callback of the estimator)."""

    header = f"{'epoch':>5} {'base_loss':>10} {'reg_loss':>10} {'total_loss':>10} {'train_rmse':>10} {'val_rmse':>9} {'val_mae':>8} {'seconds':>8}"

    def __init__(self) -> None:
        print(self.header, flush=True)

    def __call__(self, model: MatrixFactorization, row: dict) -> None:
        print(
            f"{row['epoch']:>5d} {row['base_loss']:>10.4f} {row['reg_loss']:>10.4f} "
            f"{row['total_loss']:>10.4f} {row['train_rmse']:>10.4f} "
            f"{row.get('val_rmse', float('nan')):>9.4f} {row.get('val_mae', float('nan')):>8.4f} "
            f"{row['seconds']:>8.3f}",
            flush=True,
        )


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    df, titles = load_dataset(args.dataset, args.seed)
    train, test = train_test_split(df, test_size=args.test_size, random_state=args.seed)
    if not args.quiet:
        print(
            f"{args.dataset}: {len(df):,} ratings, {df['user'].nunique():,} users, "
            f"{df['item'].nunique():,} items; training on {len(train):,}, testing on "
            f"{len(test):,} (loaded in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    params = {name: getattr(args, name) for name in _PARAMS}
    callbacks = [] if args.quiet else [_EpochTable()]
    model = MatrixFactorization(
        **params,
        early_stopping=args.early_stopping,
        random_state=args.seed,
        callbacks=callbacks,
        verbose=0,
    )
    t1 = time.perf_counter()
    model.fit(train, validation=test, item_titles=titles)
    fit_seconds = time.perf_counter() - t1
    model.set_params(callbacks=None)  # the table printer is this command's, not the model's
    pred = model.predict(test)
    err = pred - test["rating"].to_numpy(dtype=np.float64)
    print(
        f"test RMSE {np.sqrt(np.mean(err**2)):.4f}  MAE {np.mean(np.abs(err)):.4f}  "
        f"({model.n_epochs_done_} epochs in {fit_seconds:.1f} s)"
    )
    if args.save:
        model.save(args.save)
        print(f"model saved to {args.save}")
    if args.plot:
        from fastmf.plot import plot_history

        plot_history(model, path=args.plot)
        print(f"training curves written to {args.plot}")
    if args.diagnose:
        from fastmf.diagnose import diagnose

        print(diagnose(model))
    sys.stdout.flush()
    return 0
