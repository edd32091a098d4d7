"""``fastmf similar``: the items (or users) nearest to one item (or user) of a saved model."""

from __future__ import annotations

import argparse
from typing import Any

from fastmf.cli._common import (
    add_format_option,
    check_input_file,
    check_raw_id,
    positive_int,
    print_frame,
)


def register(subparsers: Any) -> None:
    """Add the ``similar`` subcommand."""
    p = subparsers.add_parser(
        "similar",
        help="items (or users) most similar to one item (or user) of a saved model",
        description=(
            "Print the n items whose factors have the highest cosine similarity with those of "
            "the given item (or, with --user, the n most similar users). An id the model was "
            "not trained on is an error."
        ),
    )
    p.add_argument("--model", required=True, metavar="FILE", help="a model saved by fastmf")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--item", metavar="ID", help="raw item id (e.g. a MovieLens movieId)")
    who.add_argument("--user", metavar="ID", help="raw user id")
    p.add_argument("-n", type=positive_int, default=10, help="number of neighbours (default 10)")
    add_format_option(p)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse a missing model file before anything is loaded."""
    check_input_file(args.model, "--model")


def run(args: argparse.Namespace) -> int:
    """Load the model and print the nearest neighbours."""
    from fastmf.serve.files.model_file import load
    from fastmf.serve.similar import similar_items, similar_users

    model = load(args.model)
    if args.item is not None:
        item = check_raw_id(args.item, model.item_ids_, "item", "--item")
        titles = getattr(model, "item_titles_", None) or {}
        frame = similar_items(model, item, n=args.n)
        if args.format == "table" and item in titles:
            print(f"items similar to {args.item}: {titles[item]}")
    else:
        user = check_raw_id(args.user, model.user_ids_, "user", "--user")
        frame = similar_users(model, user, n=args.n)
    print_frame(frame, args.format)
    return 0
