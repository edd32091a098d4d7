"""``fastmf recommend``: the top-n items for one user of a saved model."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``recommend`` subcommand."""
    p = subparsers.add_parser(
        "recommend",
        help="top-n items for a user of a saved model",
        description=(
            "Print the n items with the highest predicted rating for one user, leaving out the "
            "items the user rated in training. A user unknown to the model gets the items with "
            "the highest global mean plus item bias, marked as a fallback."
        ),
    )
    p.add_argument("--model", required=True, metavar="FILE", help="a model saved by fastmf")
    p.add_argument("--user", required=True, metavar="ID", help="raw user id (as in the ratings)")
    p.add_argument("-n", type=int, default=10, help="number of items (default 10)")
    p.add_argument(
        "--include-seen",
        action="store_true",
        help="also rank the items the user rated in training",
    )
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, rank the items for ``args.user`` and print them."""
    from fastmf.recommend import coerce_id, recommend
    from fastmf.serialize import load

    model = load(args.model)
    user = coerce_id(args.user, model.user_ids_)
    frame = recommend(model, user, n=args.n, exclude_seen=not args.include_seen)
    fallback = bool(frame.attrs.get("fallback", False))
    print_frame(frame.drop(columns=["fallback"]), args.format)
    if fallback and args.format == "table":
        print(
            f"(user {args.user} is not in the model's training data: these are the items with "
            f"the highest mean + item bias)"
        )
    return 0


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """The ``--format`` option of the commands that print a table (read by ``print_frame``)."""
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (default table)",
    )


def print_frame(frame: Any, fmt: str) -> None:
    """Print a result table as a table, CSV or JSON records."""
    if fmt == "csv":
        print(frame.to_csv(index=False), end="")
    elif fmt == "json":
        print(json.dumps(frame.to_dict(orient="records"), default=_json_default, indent=1))
    else:
        if len(frame) == 0:
            print("(no items)")
            return
        shown = frame.copy()
        shown.index = range(1, len(shown) + 1)
        print(shown.to_string(float_format=lambda x: f"{x:.4f}"))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
