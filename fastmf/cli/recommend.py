"""``fastmf recommend``: the top-n items for one user of a saved model."""

from __future__ import annotations

import argparse
from typing import Any

from fastmf.cli._common import (
    add_format_option,
    check_input_file,
    check_raw_id,
    positive_int,
    print_frame,
    warn,
)

# kept for the modules that imported them from here
__all__ = ["add_format_option", "print_frame", "register", "run"]

_SCORE_NOTE = (
    "score is the predicted rating mu + b_u + b_i + p_u.q_i, not clipped to the rating scale, so "
    "it can lie above the highest rating; it orders the items"
)


def register(subparsers: Any) -> None:
    """Add the ``recommend`` subcommand."""
    p = subparsers.add_parser(
        "recommend",
        help="top-n items for a user of a saved model",
        description=(
            "Print the n items with the highest predicted rating for one user, leaving out the "
            "items the user rated in training. A user unknown to the model gets the items with "
            "the highest global mean plus item bias, marked as a fallback in every format (a "
            "fallback column in csv and json, a note in the table, a warning on stderr). "
            + _SCORE_NOTE[0].upper()
            + _SCORE_NOTE[1:]
            + "."
        ),
    )
    p.add_argument("--model", required=True, metavar="FILE", help="a model saved by fastmf")
    p.add_argument("--user", required=True, metavar="ID", help="raw user id (as in the ratings)")
    p.add_argument("-n", type=positive_int, default=10, help="number of items (default 10)")
    p.add_argument(
        "--include-seen",
        action="store_true",
        help="also rank the items the user rated in training",
    )
    add_format_option(p)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse a missing model file before anything is loaded."""
    check_input_file(args.model, "--model")


def run(args: argparse.Namespace) -> int:
    """Load the model, rank the items for ``args.user`` and print them."""
    from fastmf.serve.files.model_file import load
    from fastmf.serve.recommend import recommend

    model = load(args.model)
    user = check_raw_id(args.user, model.user_ids_, "user", "--user")
    frame = recommend(model, user, n=args.n, exclude_seen=not args.include_seen)
    fallback = bool(frame.attrs.get("fallback", False))
    note = (
        f"user {args.user} is not in the model's training data: these are the items with the "
        "highest mean + item bias"
    )
    if args.format == "table":
        print_frame(frame.drop(columns=["fallback"]), args.format)
        if fallback:
            print(f"({note})")
        scale = getattr(model, "rating_scale_", None)
        shown = "" if scale is None else f" ({scale[0]:g} to {scale[1]:g})"
        print(f"({_SCORE_NOTE}{shown})")
    else:
        print_frame(frame, args.format)  # its fallback column flags every row
        if fallback:
            warn(note)
    return 0
