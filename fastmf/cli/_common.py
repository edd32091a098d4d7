"""What every ``fastmf`` subcommand shares: checks of options before any work, output formats,
and the errors a command refuses its options with.

Each command module may define ``check(args)``, run before ``run(args)`` touches any data; it
raises :class:`UsageError` for an option that cannot work, which the shell reports as a usage
error (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

FORMATS = ("table", "csv", "json")


class UsageError(Exception):
    """An option that cannot work, found before any data was read (exit status 2)."""


# --------------------------------------------------------------------------- argparse types


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = _parse(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = _parse(text, float, "a number")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a fraction between 0 and 1 (exclusive), got {text}"
        )
    return value


def _parse(text: str, kind: type, what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


# --------------------------------------------------------------------------- checks of paths


def check_input_file(path: str, option: str) -> None:
    """Refuse an input file that does not exist or is a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{option} {path}: no such file")
    if p.is_dir():
        raise UsageError(f"{option} {path} is a folder; expected a file")


def check_output_file(path: str, option: str) -> None:
    """Refuse an output path whose folder is missing or not writable, or that is a folder."""
    p = Path(path).expanduser()
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name inside it")
    if not folder.is_dir():
        raise UsageError(
            f"{option} {path}: the folder {str(folder)!r} does not exist; create it first "
            "or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {str(folder)!r} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"{option} {path}: the file exists and is not writable")


def check_plot_file(path: str, option: str = "--plot") -> None:
    """Refuse a plot path matplotlib cannot write: matplotlib missing, an unknown suffix, or an
    output folder that is not there."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError(
            f"{option} needs matplotlib, which is not installed; pip install 'fastmf[plot]' "
            "(or matplotlib), or leave out " + option
        ) from None
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        got = f"the suffix .{suffix}" if suffix else "no suffix"
        raise UsageError(
            f"{option} {path} has {got}; matplotlib writes {', '.join(formats)}: "
            "name the file with one of those suffixes (e.g. run.png)"
        )
    check_output_file(path, option)


def check_dataset(name: str, option: str = "--dataset", *, synthetic: bool = True) -> None:
    """Refuse a data set that is no synthetic twin (when allowed), no MovieLens release name
    and no existing path."""
    from fastmf.data.datasets import RELEASES

    if synthetic and name.startswith("synthetic"):
        from fastmf.data.datasets.synthetic import MOVIELENS_SIZES

        like = name.partition("-")[2] or "ml-100k"
        if like not in MOVIELENS_SIZES:
            twins = ", ".join(f"synthetic-{r}" for r in MOVIELENS_SIZES)
            raise UsageError(f"{option} {name!r}: no such synthetic twin; expected one of {twins}")
        return
    if name.strip().lower() in RELEASES or Path(name).expanduser().exists():
        return
    twin = ", a synthetic twin (synthetic-ml-100k, ...)" if synthetic else ""
    raise UsageError(
        f"{option} {name!r} is neither a MovieLens release ({', '.join(RELEASES)}){twin} nor "
        "an existing zip, folder or ratings file"
    )


def read_error(name: str, exc: BaseException, option: str = "--dataset") -> ValueError:
    """A loader's error that does not name the data (a zip member in an unknown compression,
    say) as one that does."""
    return ValueError(f"{option} {name}: cannot read it: {' '.join(str(exc).split())}")


# errors of reading a data file whose message does not say which file
UNNAMED_READ_ERRORS: tuple[type[Exception], ...] = (
    NotImplementedError,
    EOFError,
    zipfile.BadZipFile,
)


# --------------------------------------------------------------------------- ids


def check_raw_id(raw: str, ids: Any, what: str, option: str) -> Any:
    """``raw`` as an id of the model's kind: an int for a model with integer ids; text that
    cannot be one is an error (ValueError), not an unknown id."""
    from fastmf.serve.lookup import coerce_id

    value = coerce_id(raw, ids)
    if isinstance(value, str) and _integer_ids(ids):
        raise ValueError(
            f"{option} {raw!r} cannot be an id of this model: its {what} ids are integers "
            f"(e.g. {ids[0]!r}); give an integer"
        )
    return value


def _integer_ids(ids: Any) -> bool:
    import numbers

    if ids.dtype.kind in "iu":
        return True
    return bool(ids.dtype == object and ids.shape[0] and isinstance(ids[0], numbers.Integral))


# --------------------------------------------------------------------------- output


def add_format_option(parser: argparse.ArgumentParser, *, json_alias: bool = False) -> None:
    """The ``--format`` option of the commands that print results (``--json``: a hidden alias
    of ``--format json``)."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="output format: table (for reading), csv or json (default table)",
    )
    if json_alias:
        parser.add_argument(
            "--json", action="store_const", const="json", dest="format", help=argparse.SUPPRESS
        )


def print_frame(frame: Any, fmt: str) -> None:
    """Print a result table as a table, CSV or JSON records."""
    if fmt == "csv":
        print(frame.to_csv(index=False), end="")
    elif fmt == "json":
        print(to_json(frame.to_dict(orient="records")))
    else:
        if len(frame) == 0:
            print("(no items)")
            return
        shown = frame.copy()
        shown.index = range(1, len(shown) + 1)
        print(shown.to_string(float_format=lambda x: f"{x:.4f}"))


def to_json(value: Any) -> str:
    """``value`` as indented JSON; numpy scalars become numbers, NaN becomes null."""
    return json.dumps(_plain(value), default=_json_default, indent=1, allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def warn(message: str) -> None:
    """One line on stderr, for what the user should see whatever the output format."""
    print(f"fastmf: warning: {message}", file=sys.stderr, flush=True)


def info(message: str, fmt: str) -> None:
    """A line about the run: on stdout in a table, on stderr when stdout holds csv or json."""
    print(message, file=sys.stdout if fmt == "table" else sys.stderr, flush=True)
