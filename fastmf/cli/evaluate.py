"""``fastmf evaluate``: RMSE, MAE and ranking metrics of a saved model on a data set."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from fastmf.cli._common import (
    UNNAMED_READ_ERRORS,
    UsageError,
    add_format_option,
    check_dataset,
    check_input_file,
    positive_int,
    read_error,
    to_json,
)


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="RMSE, MAE, precision/recall/NDCG at k and hit rate of a saved model",
        description=(
            "Score a saved model on a MovieLens release or ratings file. By default only the "
            "ratings the model was not trained on are scored (pairs in its training data are "
            "left out), so the whole data set a model was trained on a split of can be given. "
            "Ranking metrics: the top k among the items each user did not rate in training; "
            "relevant means a rating at or above --threshold."
        ),
    )
    p.add_argument("--model", required=True, metavar="FILE", help="a model saved by fastmf")
    p.add_argument(
        "--dataset",
        required=True,
        metavar="NAME_OR_PATH",
        help="a MovieLens release name (e.g. ml-latest-small) or a path to its zip, folder or "
        "ratings file",
    )
    p.add_argument(
        "-k", type=positive_int, default=10, help="list length of the ranking metrics (10)"
    )
    p.add_argument(
        "--threshold", type=float, default=4.0, help="lowest relevant rating (default 4.0)"
    )
    p.add_argument(
        "--all-ratings",
        action="store_true",
        help="score every rating, including the pairs the model was trained on",
    )
    add_format_option(p, json_alias=True)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse a missing model file or data set before anything is loaded."""
    check_input_file(args.model, "--model")
    check_dataset(args.dataset, synthetic=False)
    if not args.threshold == args.threshold or abs(args.threshold) == float("inf"):
        raise UsageError(f"--threshold must be a finite rating, got {args.threshold}")


def run(args: argparse.Namespace) -> int:
    """Load the model and the data, and print the metrics."""
    from fastmf.data.datasets import load_movielens
    from fastmf.evaluate.metrics import evaluate
    from fastmf.serve.files.model_file import load

    model = load(args.model)
    try:
        ratings = load_movielens(args.dataset)
    except UNNAMED_READ_ERRORS as exc:
        raise read_error(args.dataset, exc) from exc
    n_total = len(ratings)
    if not args.all_ratings:
        ratings = ratings[~_trained_pairs(model, ratings)]
    if len(ratings) == 0:
        raise ValueError(
            f"every rating of {args.dataset} was in the model's training data; pass "
            f"--all-ratings to score them anyway, or give held-out ratings"
        )
    result = evaluate(model, ratings, k=args.k, threshold=args.threshold)
    result["n_ratings_total"] = n_total
    if args.format == "json":
        print(to_json(result))
        return 0
    if args.format == "csv":
        print(pd.DataFrame([result]).to_csv(index=False), end="")
        return 0
    k = result["k"]
    print(f"model:   {args.model}")
    print(
        f"dataset: {args.dataset}: {result['n_ratings']:,} ratings scored"
        + ("" if args.all_ratings else f" (of {n_total:,}; training pairs left out)")
    )
    print(f"RMSE            {result['rmse']:.4f}")
    print(f"MAE             {result['mae']:.4f}")
    print(f"precision@{k:<5} {result['precision']:.4f}")
    print(f"recall@{k:<8} {result['recall']:.4f}")
    print(f"NDCG@{k:<10} {result['ndcg']:.4f}")
    print(f"hit rate@{k:<6} {result['hit_rate']:.4f}")
    print(
        f"ranking over {result['n_users']:,} users with a rating >= {result['threshold']:g}"
        + (
            f" ({result['n_users_skipped']:,} users unknown to the model skipped)"
            if result["n_users_skipped"]
            else ""
        )
    )
    return 0


def _trained_pairs(model: Any, ratings: Any) -> Any:
    """Boolean mask of the rows whose (user, item) pair is in the model's training data."""
    from fastmf.serve.lookup import trained_pairs

    return trained_pairs(model, ratings["user"].to_numpy(), ratings["item"].to_numpy())
