"""``fastmf diagnose``: read a saved model's training history and say what it shows."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``diagnose`` subcommand."""
    p = subparsers.add_parser(
        "diagnose",
        help="explain a saved model's training history (over/underfitting, the scale of reg)",
        description=(
            "Read the training history a saved model carries and report, in plain words, whether "
            "it overfits or underfits, whether the error was still falling, and how large the "
            "regularization loss is against the base loss."
        ),
    )
    p.add_argument("--model", required=True, metavar="FILE", help="a model saved by fastmf")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the history to FILE (.png, .svg or .pdf; needs fastmf[plot])",
    )
    p.add_argument(
        "--ratings",
        metavar="CSV",
        help=(
            "the training ratings (columns user,item,rating or MovieLens userId,movieId,rating): "
            "lets the diagnosis compare the training error with the bias-only model"
        ),
    )
    p.set_defaults(func=run)


def _read_ratings(path: str) -> Any:
    import pandas as pd

    if not os.path.exists(path):
        raise FileNotFoundError(f"--ratings {path}: no such file")
    df = pd.read_csv(path)
    df = df.rename(columns={"userId": "user", "movieId": "item"})
    missing = [c for c in ("user", "item", "rating") if c not in df.columns]
    if missing:
        raise ValueError(
            f"--ratings {path} lacks the column(s) {missing}; expected user,item,rating "
            f"(or userId,movieId,rating), got {list(df.columns)}"
        )
    return df


def run(args: argparse.Namespace) -> int:
    """Print the diagnosis of ``args.model`` and draw its history when ``--plot`` is given."""
    from fastmf.diagnose import diagnose

    if not os.path.exists(args.model):
        raise FileNotFoundError(f"--model {args.model}: no such file")
    from fastmf.serialize import load

    model = load(args.model)
    history = getattr(model, "history_", None)
    if history is None or len(history) == 0:
        raise ValueError(
            f"--model {args.model} carries no training history (it was never fitted, or was "
            "saved without one); nothing to diagnose"
        )
    data = _read_ratings(args.ratings) if args.ratings else None
    print(diagnose(model, data))
    if args.plot:
        try:
            from fastmf.plot import plot_history

            plot_history(model, path=args.plot)
        except ImportError as exc:
            print(f"fastmf diagnose: error: {exc}", file=sys.stderr)
            return 1
        print(f"\nplot written to {args.plot}")
    return 0
