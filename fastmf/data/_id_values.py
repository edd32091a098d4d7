"""What a raw user or item id is: its kind, integers held as floats or objects, and the errors
for ids that are missing, fractional, boolean or of mixed types."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from fastmf._validation import first_rows

MISSING = "missing"


def kind_of(x: Any) -> str:
    """The kind of one raw id: "int", "float", "str", "bytes", "missing", "bool" or a type name."""
    if x is None or x is pd.NA or x is pd.NaT:
        return MISSING
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, numbers.Integral):
        return "int"
    if isinstance(x, (float, np.floating)):
        return MISSING if np.isnan(x) else "float"
    if isinstance(x, str):
        return "str"
    if isinstance(x, bytes):
        return "bytes"
    return type(x).__name__


_KIND_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bytes": "bytes"}


def whole_floats(arr: np.ndarray, column: str) -> np.ndarray:
    """Float ids as the integers they hold (int64, or uint64 past int64); raises ValueError
    naming the first id that is NaN, infinite or not a whole number."""
    check_floats(arr, column)
    if arr.size and (arr.min() < -(2.0**63) or arr.max() >= 2.0**64):
        row = int(np.flatnonzero((arr < -(2.0**63)) | (arr >= 2.0**64))[0])
        raise ValueError(
            f"{column} id {float(arr[row])!r} at row {row} is outside the 64-bit integer range; "
            f"give the ids as integers or strings"
        )
    if arr.size and arr.max() >= 2.0**63:
        if arr.min() < 0:
            return int_objects(np.array([int(x) for x in arr], dtype=object))
        return arr.astype(np.uint64)
    return arr.astype(np.int64)


def int_objects(arr: np.ndarray) -> np.ndarray:
    """Integer ids held as objects: int64 when they fit, else uint64, else kept as Python ints."""
    for dtype in (np.int64, np.uint64):
        try:
            out = arr.astype(dtype)
        except OverflowError:
            continue
        # numpy integer scalars among the objects convert without a range check: compare values
        if (out.astype(object) == arr).all():
            return out
    return np.array([int(x) for x in arr], dtype=object)


def object_ids(arr: np.ndarray, column: str) -> np.ndarray:
    """Ids in an object array, all of one kind; integers (and whole floats) become an int array."""
    inferred = pd.api.types.infer_dtype(arr, skipna=False)
    if inferred in ("string", "bytes") or arr.size == 0:
        return arr
    if inferred == "integer":
        return int_objects(arr)
    if inferred == "floating":
        return whole_floats(arr.astype(np.float64), column)
    kinds = [kind_of(x) for x in arr]
    seen: dict[str, int] = {}
    for row, kind in enumerate(kinds):
        if kind == MISSING:
            raise ValueError(
                f"{column} has missing ids (first: {arr[row]!r} at row {row}); every rating "
                f"needs a {column} id: drop or fill those rows"
            )
        if kind == "bool":
            raise TypeError(
                f"{column} ids must be integers or strings; found the boolean {arr[row]!r} at "
                f"row {row}"
            )
        if kind not in _KIND_NAMES:
            raise TypeError(
                f"{column} ids must be integers or strings; found {arr[row]!r} (a {kind}) at "
                f"row {row}; convert the column with .astype(str)"
            )
        seen.setdefault("number" if kind in ("int", "float") else kind, row)
    if len(seen) > 1:
        (_, ra), (_, rb) = list(seen.items())[:2]
        raise TypeError(
            f"{column} mixes ids of different types: {plain_value(arr[ra])!r} "
            f"({_describe_kind(kinds[ra])}) at row {ra} and {plain_value(arr[rb])!r} "
            f"({_describe_kind(kinds[rb])}) at row {rb}; give every "
            f"{column} id one type, e.g. convert the column with .astype(str) or pd.to_numeric"
        )
    if "number" in seen:
        for row, kind in enumerate(kinds):
            if kind == "float":
                refuse_float(float(arr[row]), str(row), column)
        return int_objects(np.array([int(x) for x in arr], dtype=object))
    return arr


def _describe_kind(kind: str) -> str:
    return _KIND_NAMES.get(kind, f"a {kind}")


def refuse_float(value: float, rows: str, column: str) -> None:
    """Raise ValueError when the float id ``value`` (the first of ``rows``) is not finite or not
    a whole number."""
    if not np.isfinite(value):
        raise ValueError(
            f"{column} has missing or infinite ids (first at rows {rows}), the first {value}; "
            f"every rating needs a {column} id: drop or fill those rows"
        )
    if not float(value).is_integer():
        raise ValueError(
            f"{column} ids must be integers or strings; found {value!r} at row "
            f"{rows.split(',')[0]}, which is not a whole number"
        )


def check_floats(raw: np.ndarray, column: str) -> None:
    """Refuse the first float id that is NaN or infinite, else the first that is not whole."""
    for bad in (~np.isfinite(raw), raw != np.floor(raw)):
        if bad.any():
            refuse_float(float(raw[np.flatnonzero(bad)[0]]), first_rows(bad), column)


def plain_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value
