"""The ``fastmf`` command line: one module per subcommand, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each name is a module of this package that defines ``register(subparsers)``; the parser it adds
# sets ``func`` to a callable taking the parsed arguments and returning an exit code.
_COMMAND_MODULES = ("train", "evaluate", "recommend", "similar", "diagnose", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand whose module is present."""
    parser = argparse.ArgumentParser(
        prog="fastmf", description="Biased matrix factorization of explicit ratings."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fastmf.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fastmf.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fastmf`` and ``python -m fastmf``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fastmf {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastmf {args.command}: interrupted", file=sys.stderr)
        return 130
