"""``fastmf diagnose``: read a saved model's training history and say what it shows."""

from __future__ import annotations

import argparse
import os
from typing import Any

from fastmf.cli._common import (
    add_format_option,
    check_input_file,
    check_plot_file,
    info,
    print_frame,
    to_json,
)


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
    add_format_option(p)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse missing input files and a plot that cannot be written, before anything is read."""
    check_input_file(args.model, "--model")
    if args.ratings:
        check_input_file(args.ratings, "--ratings")
    if args.plot:
        check_plot_file(args.plot)


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
    from fastmf.evaluate.diagnose import diagnose
    from fastmf.serve.files.model_file import load

    model = load(args.model)
    history = getattr(model, "history_", None)
    if history is None or len(history) == 0:
        raise ValueError(
            f"--model {args.model} carries no training history (it was never fitted, or was "
            "saved without one); nothing to diagnose"
        )
    data = _read_ratings(args.ratings) if args.ratings else None
    diagnosis = diagnose(model, data)
    if args.format == "table":
        print(diagnosis)
    elif args.format == "json":
        print(to_json({"findings": [_finding(f) for f in diagnosis.findings],
                       "summary": diagnosis.summary}))  # fmt: skip
    else:
        import pandas as pd

        rows = [_finding(f) for f in diagnosis.findings]
        for row in rows:
            row["advice"] = " | ".join(row["advice"])
            row.pop("figures")
        print_frame(pd.DataFrame(rows, columns=["code", "severity", "message", "advice"]), "csv")
    if args.plot:
        from fastmf.evaluate.plot import plot_history

        plot_history(model, path=args.plot)
        info(f"\nplot written to {args.plot}", args.format)
    return 0


def _finding(finding: Any) -> dict[str, Any]:
    return {
        "code": finding.code,
        "severity": finding.severity,
        "message": finding.message,
        "advice": list(finding.advice),
        "figures": dict(finding.figures),
    }
