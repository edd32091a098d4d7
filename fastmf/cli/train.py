"""``fastmf train``: fit a model on a data set and print its losses epoch by epoch."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fastmf._stats import root_mean_square
from fastmf.cli._common import (
    UNNAMED_READ_ERRORS,
    UsageError,
    add_format_option,
    check_dataset,
    check_output_file,
    check_plot_file,
    fraction,
    info,
    read_error,
    to_json,
    warn,
)
from fastmf.cli._compile import announce_compile, kernels_cached  # noqa: F401
from fastmf.data.split import train_test_split
from fastmf.train.estimator import MatrixFactorization
from fastmf.train.params import BIASES, DTYPES, LR_SCHEDULES, OPTIMIZERS

DEFAULT_DATASET = "synthetic-ml-100k"

# command-line option -> estimator parameter: (type, choices, help)
_PARAMS: dict[str, tuple[type, tuple[str, ...] | None, str]] = {
    "n_factors": (int, None, "length k of the factor vectors (default %(default)s)"),
    "n_epochs": (int, None, "passes over the training ratings (default %(default)s)"),
    "batch_size": (int, None, "ratings per batch; 1 is per-rating SGD (default %(default)s)"),
    "learning_rate": (float, None, "the step size at the first epoch (default %(default)s)"),
    "reg": (float, None, "λ on the squared norms of the factors (default %(default)s)"),
    "reg_bias": (float, None, "penalty on the squared biases (default %(default)s)"),
    "optimizer": (str, OPTIMIZERS, "default %(default)s"),
    "biases": (str, BIASES, "default %(default)s"),
    "init_std": (float, None, "factors start as draws from N(0, init_std²) (default %(default)s)"),
    "lr_schedule": (str, LR_SCHEDULES, "default %(default)s"),
    "lr_decay": (
        float,
        None,
        "the schedule's factor: default 0.8 for exponential, 0.5 for step and plateau",
    ),
    "patience": (
        int,
        None,
        "epochs without improvement before early stopping (default %(default)s)",
    ),
    "n_jobs": (int, None, "threads; -1 for all cores (default %(default)s)"),
    "dtype": (str, DTYPES, "default %(default)s"),
}

# a schedule or option that decides from the validation error: it must not see the test part
_WATCHES_VALIDATION = ("plateau",)


def _number_or_auto(kind: type) -> Any:
    """An option type that takes a number of ``kind`` or "auto"."""

    def parse(text: str) -> Any:
        return text if text == "auto" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a model and print base, regularization and total loss per epoch",
        description=(
            "Train biased matrix factorization on a data set, hold out a test part, and print "
            "a row per epoch: base loss, regularization loss, their total, and validation error. "
            "With --early-stopping (or --lr-schedule plateau) the validation part is carved from "
            "the training part, so the test RMSE reported at the end is on ratings no decision "
            "saw. Ctrl-C stops after the running epoch; with --save the model of the last "
            "completed epoch is saved."
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
    p.add_argument(
        "--test-size",
        type=fraction,
        default=0.1,
        help="held-out test fraction (default %(default)s)",
    )
    p.add_argument(
        "--validation-size",
        type=fraction,
        default=0.1,
        help="with --early-stopping or --lr-schedule plateau: the fraction of the training part "
        "carved off as the validation part they watch (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random_state of the split and the model (default %(default)s)",
    )
    defaults = MatrixFactorization().get_params()
    for name, (kind, choices, text) in _PARAMS.items():
        flag = "--" + name.replace("_", "-")
        if defaults[name] == "auto" and choices is None:  # a number, or "auto" from the data
            kind = _number_or_auto(kind)
        p.add_argument(flag, type=kind, choices=choices, default=defaults[name], help=text)
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop when the validation RMSE stalls for --patience epochs and keep the best epoch",
    )
    p.add_argument("--save", metavar="FILE", help="write the trained model to FILE")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="write the training curves to FILE (.png, .svg, .pdf, ...; needs fastmf[plot])",
    )
    p.add_argument("--diagnose", action="store_true", help="print what the history shows")
    p.add_argument("--quiet", action="store_true", help="print only the final figures")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (one is drawn on stderr when it is a terminal)",
    )
    add_format_option(p)
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse, before any data is read, the options that cannot work."""
    check_dataset(args.dataset)
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    params = _estimator_params(args)
    try:
        checked = MatrixFactorization(**params)._check_params()
    except (TypeError, ValueError) as exc:
        name = str(exc).split(" ", 1)[0]
        flag = f"--{name.replace('_', '-')} {params[name]}: " if name in params else ""
        raise UsageError(f"{flag}{exc}") from None
    from fastmf.train.checks import model_bytes, physical_memory

    have = physical_memory()
    if have is not None and args.n_factors != "auto" and model_bytes(1, 1, checked) > have:
        raise UsageError(
            f"--n-factors {args.n_factors} needs {model_bytes(1, 1, checked) / 2**30:,.0f} GiB "
            f"for a single user and item, and this machine has {have / 2**30:.1f} GiB; "
            "lower --n-factors"
        )
    if args.save:
        check_output_file(args.save, "--save")
    if args.plot:
        check_plot_file(args.plot)
    if args.plot and args.save and Path(args.plot).resolve() == Path(args.save).resolve():
        raise UsageError("--plot and --save name the same file; give them different names")


def load_dataset(name: str, seed: int = 0) -> tuple[pd.DataFrame, dict | None]:
    """Ratings and, where the data has them, item titles, for a ``--dataset`` value."""
    if name.startswith("synthetic"):
        from fastmf.data.datasets import synthetic

        like = name.partition("-")[2] or "ml-100k"
        drawn = synthetic(like=like, random_state=seed)
        assert isinstance(drawn, pd.DataFrame)
        return drawn, None
    from fastmf.data.datasets import load_movielens, load_movies

    ratings = load_movielens(name)
    try:
        movies = load_movies(name)
    except (FileNotFoundError, ValueError):
        movies = None
    titles = None if movies is None else dict(zip(movies["item"], movies["title"], strict=True))
    return ratings, titles


_COLUMNS = (
    ("epoch", 5, "d"),
    ("base_loss", 10, ".4f"),
    ("reg_loss", 10, ".4f"),
    ("total_loss", 10, ".4f"),
    ("train_rmse", 10, ".4f"),
    ("val_rmse", 9, ".4f"),
    ("val_mae", 8, ".4f"),
    ("seconds", 8, ".3f"),
)


class _EpochTable:
    """Prints one row per epoch as training goes (a callback of the estimator): aligned columns
    for ``table``, comma-separated values for ``csv``. Rows go through tqdm's writer when a
    progress bar is on screen, so that the bar stays below them."""

    def __init__(self, fmt: str, bar: bool) -> None:
        self.fmt = fmt
        self.bar = bar
        if fmt == "csv":
            self._write(",".join(name for name, _, _ in _COLUMNS))
        else:
            self._write(" ".join(f"{name:>{width}}" for name, width, _ in _COLUMNS))

    def _write(self, line: str) -> None:
        if self.bar:
            from tqdm.auto import tqdm

            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()
        else:
            print(line, flush=True)

    def __call__(self, model: MatrixFactorization, row: dict) -> None:
        values = [row.get(name, float("nan")) for name, _, _ in _COLUMNS]
        if self.fmt == "csv":
            cells = [str(values[0])] + [
                repr(float(v)) if math.isfinite(v) else "" for v in values[1:]
            ]
            self._write(",".join(cells))
        else:
            self._write(
                " ".join(
                    f"{v:>{w}{spec}}" for v, (_, w, spec) in zip(values, _COLUMNS, strict=True)
                )
            )


def run(args: argparse.Namespace) -> int:
    """Load the data, split it, train, report the test error, and save, plot, diagnose."""
    fmt = args.format
    t0 = time.perf_counter()
    try:
        df, titles = load_dataset(args.dataset, args.seed)
    except UNNAMED_READ_ERRORS as exc:
        raise read_error(args.dataset, exc) from exc
    train, test = train_test_split(df, test_size=args.test_size, random_state=args.seed)
    carve = args.early_stopping or args.lr_schedule in _WATCHES_VALIDATION
    if carve:
        # the decisions (stop, lower the rate) watch a part of the training ratings, never the test
        rng = np.random.default_rng(np.random.SeedSequence([args.seed, 1]))
        fit_part, validation = train_test_split(train, test_size=args.validation_size,
                                                random_state=rng)  # fmt: skip
    else:
        fit_part, validation = train, test  # reported each epoch, decides nothing
    if not args.quiet:
        _describe_split(args, df, fit_part, validation, test, carve, time.perf_counter() - t0)
    params = _estimator_params(args)
    bar = not args.no_progress and sys.stderr.isatty()
    table = None if args.quiet or fmt == "json" else _EpochTable(fmt, bar)
    model = MatrixFactorization(
        **params,
        early_stopping=args.early_stopping,
        random_state=args.seed,
        callbacks=[table] if table is not None else None,
        verbose=1 if bar else 0,
    )
    announce_compile(model._check_params(), fit_part)
    t1 = time.perf_counter()
    try:
        model.fit(fit_part, validation=validation, item_titles=titles)
    except KeyboardInterrupt:
        model.set_params(callbacks=None)
        _save_interrupted(model, args.save)
        raise
    fit_seconds = time.perf_counter() - t1
    model.set_params(callbacks=None)  # the table printer is this command's, not the model's
    pred = model.predict(test)
    err = pred - test["rating"].to_numpy(dtype=np.float64)
    rmse, mae = root_mean_square(err), float(np.mean(np.abs(err)))
    best = getattr(model, "best_epoch_", None)
    summary = (
        f"test RMSE {rmse:.4f}  MAE {mae:.4f}  ({_epochs(model.n_epochs_done_)} in "
        f"{fit_seconds:.1f} s" + (f"; kept the best, epoch {best}" if best else "") + ")"
    )
    if fmt == "table":
        print(summary)
    else:
        print(summary, file=sys.stderr)
    if args.save:
        model.save(args.save)
        info(f"model saved to {args.save}", fmt)
    if args.plot:
        from fastmf.evaluate.plot import plot_history

        plot_history(model, path=args.plot)
        info(f"training curves written to {args.plot}", fmt)
    diagnosis = None
    if args.diagnose:
        from fastmf.evaluate.diagnose import diagnose

        diagnosis = diagnose(model)
        if fmt != "json":
            info(str(diagnosis), fmt)
    if fmt == "json":
        split = {"n_ratings": len(df), "n_train": len(fit_part), "n_test": len(test),
                 "n_validation": len(validation) if carve else 0}  # fmt: skip
        print(to_json(_json_result(args, model, split, rmse, mae, fit_seconds, params, diagnosis)))
    return 0


def _describe_split(
    args: argparse.Namespace, df: Any, fit_part: Any, validation: Any, test: Any, carve: bool,
    seconds: float,
) -> None:  # fmt: skip
    """Say what the data is, how it was split, and what val_rmse is measured on."""
    fmt = args.format
    info(
        f"{args.dataset}: {len(df):,} ratings, {df['user'].nunique():,} users, "
        f"{df['item'].nunique():,} items; training on {len(fit_part):,}, testing on "
        f"{len(test):,} (loaded in {seconds:.1f} s)",
        fmt,
    )
    watchers = " and ".join(
        name
        for name, on in (
            ("early stopping", args.early_stopping),
            ("the plateau schedule", args.lr_schedule in _WATCHES_VALIDATION),
        )
        if on
    )
    info(
        f"val_rmse: a validation part of {len(validation):,} ratings carved from the "
        f"training ratings ({watchers} {'watch' if ' and ' in watchers else 'watches'} it), "
        "not the test part"
        if carve
        else "val_rmse: the test part (reported only; it decides nothing)",
        fmt,
    )


def _json_result(
    args: argparse.Namespace, model: Any, split: dict[str, int], rmse: float, mae: float,
    fit_seconds: float, params: dict[str, Any], diagnosis: Any,
) -> dict[str, Any]:  # fmt: skip
    """The run as one JSON document."""
    result: dict[str, Any] = {
        "dataset": args.dataset,
        **split,
        "test_rmse": rmse,
        "test_mae": mae,
        "n_epochs_done": int(model.n_epochs_done_),
        "best_epoch": getattr(model, "best_epoch_", None),
        "fit_seconds": fit_seconds,
        "params": params,
        "history": model.history_.to_dict(orient="records"),
        "saved": args.save,
        "plot": args.plot,
    }
    if diagnosis is not None:
        result["diagnosis"] = [f.code for f in diagnosis.findings]
    return result


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in _PARAMS}


def _save_interrupted(model: MatrixFactorization, path: str | None) -> None:
    """On Ctrl-C: save the model of the last completed epoch when ``--save`` was given."""
    done = int(getattr(model, "n_epochs_done_", 0) or 0)
    if not hasattr(model, "user_factors_") or done == 0:
        if path:
            warn(f"interrupted before the first epoch completed; nothing saved to {path}")
        return
    if not path:
        warn(f"interrupted after epoch {done}; the model is not saved (no --save)")
        return
    model.save(path)
    warn(f"interrupted: the model of epoch {done}, the last completed, is saved to {path}")
