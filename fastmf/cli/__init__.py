"""The ``fastmf`` command line: one module per subcommand, each with ``register(subparsers)``.

Exit status: 0 on success, 1 when the work failed (one line on stderr, no traceback), 2 for a
command line that cannot work (found before any data is read), 130 on Ctrl-C and 141 when the
reader of the output went away (``fastmf train | head -2``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from fastmf._version import __version__
from fastmf.cli._common import UsageError

# Each name is a module of this package that defines ``register(subparsers)``; the parser it adds
# sets ``func`` to a callable taking the parsed arguments and returning an exit code, and may set
# ``check`` to a callable that refuses options before any data is read (raising UsageError).
_COMMAND_MODULES = ("train", "evaluate", "recommend", "similar", "diagnose", "tune")

# Set FASTMF_TRACEBACK=1 to see the traceback of a failed command instead of its one-line error.
TRACEBACK_ENV = "FASTMF_TRACEBACK"

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 141


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand whose module is present."""
    parser = argparse.ArgumentParser(
        prog="fastmf", description="Biased matrix factorization of explicit ratings."
    )
    parser.add_argument("--version", action="version", version=f"fastmf {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fastmf.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fastmf.cli.{name}":
                continue
            raise
        before = set(subparsers.choices)
        module.register(subparsers)
        for added in set(subparsers.choices) - before:
            subparsers.choices[added].set_defaults(_subparser=subparsers.choices[added])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fastmf`` and ``python -m fastmf``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    sub = getattr(args, "_subparser", parser)
    try:
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a message at exit
        return code
    except UsageError as exc:
        sub.print_usage(sys.stderr)
        print(f"{sub.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastmf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"fastmf: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _describe(exc: BaseException) -> str:
    """The error as one line: its message, with the kind of error where the message alone does
    not say it (a KeyError's quotes are dropped)."""
    if isinstance(exc, KeyError) and exc.args:
        return _one_line(exc.args[0])
    text = _one_line(exc)
    expected = (ValueError, TypeError, OSError, ArithmeticError, LookupError)
    if isinstance(exc, MemoryError):
        return f"out of memory ({text or 'no details'}); try a smaller model or data set"
    if not text or not isinstance(exc, expected):
        name = type(exc).__name__
        text = f"{name}: {text}" if text else name
        return f"{text} (set {TRACEBACK_ENV}=1 to see where)"
    return text


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at devnull, so that the flush at exit stays quiet (as
    the Python documentation on SIGPIPE recommends)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced in-process (tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
