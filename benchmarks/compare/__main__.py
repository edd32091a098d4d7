"""``python -m benchmarks.compare``: train fastmf and its peers side by side and report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.compare.peers import PEERS
from benchmarks.compare.runner import DEFAULT_LIBRARIES, Settings, run_comparison


def _options(pairs: Sequence[str]) -> dict[str, dict]:
    """``LIBRARY.NAME=VALUE`` pairs as {library: {name: value}} (numbers parsed)."""
    out: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        library, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(
                f"--set {pair!r}: expected LIBRARY.NAME=VALUE, e.g. torch-b1024.lr=0.01"
            )
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out.setdefault(library, {})[name] = value
    return out


def _interpreters(pairs: Sequence[str]) -> dict[str, str]:
    """``LIBRARY=PATH`` pairs as {library: path}."""
    out = {}
    for pair in pairs:
        library, sep, path = pair.partition("=")
        if not sep or not library or not path:
            raise ValueError(
                f"--python {pair!r}: expected LIBRARY=PATH, e.g. lenskit=/lk/bin/python"
            )
        out[library] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Train fastmf and the peers on one split; report time, accuracy and memory.",
    )
    p.add_argument(
        "--data",
        default="synthetic-1m",
        help="synthetic-1m | synthetic-5m | synthetic-25m | synthetic:N | "
        "ml-latest-small (FASTMF_DATA) | movielens:NAME (default synthetic-1m)",
    )
    p.add_argument(
        "--libraries",
        default=",".join(DEFAULT_LIBRARIES),
        help=f"comma-separated, from {', '.join(PEERS)} (default: all)",
    )
    p.add_argument("--factors", type=int, default=64, help="latent factors (default 64)")
    p.add_argument("--epochs", type=int, default=20, help="epochs for every library (default 20)")
    p.add_argument(
        "--reg", type=float, default=0.05, help="L2 weight per rating on the factors (default 0.05)"
    )
    p.add_argument("--threads", type=int, default=2, help="threads per library (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument(
        "--time-budget",
        type=float,
        default=1800.0,
        help="seconds per library before it is stopped (default 1800)",
    )
    p.add_argument(
        "--memory-limit",
        type=float,
        default=None,
        help="GB of resident memory per library before it is stopped (default 80%% of the machine)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="LIBRARY.NAME=VALUE",
        help="a library's own setting, e.g. torch-sparse-b100k.lr=0.05 (repeatable)",
    )
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="LIBRARY=PATH",
        help="run a library with another interpreter, e.g. lenskit=/opt/lk/bin/python, for a "
        "peer that cannot share fastmf's environment (repeatable)",
    )
    p.add_argument(
        "--no-build",
        action="store_true",
        help="do not download and build LIBMF with AVX (skip libmf-avx if unbuilt)",
    )
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--out",
        type=Path,
        default=Settings.out_dir,
        help="folder for the .md, .json and .png (default benchmarks/results)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings(
            dataset=args.data,
            n_factors=args.factors,
            n_epochs=args.epochs,
            reg=args.reg,
            threads=args.threads,
            seed=args.seed,
            test_fraction=args.test_fraction,
            libraries=[name.strip() for name in args.libraries.split(",") if name.strip()],
            time_budget=args.time_budget,
            memory_limit_gb=args.memory_limit,
            options=_options(args.set),
            python=_interpreters(args.python),
            build_libmf=not args.no_build,
            out_dir=args.out,
            plot=not args.no_plot,
        )
        report = run_comparison(settings, log=lambda text: print(text, file=sys.stderr))
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.compare: error: {exc}", file=sys.stderr)
        return 2
    from benchmarks.compare.report import markdown

    print(markdown(report))
    for kind, path in report["files"].items():
        print(f"{kind}: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
