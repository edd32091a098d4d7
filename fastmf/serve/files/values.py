"""Decoding the values a manifest describes, each checked against what it may be.

Every decoder raises :class:`~fastmf.serve.files.schema.Invalid` naming where the value is.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from fastmf.serve.files.schema import BIT_GENERATORS, SCALAR_DTYPES, Invalid


def short(value: Any) -> str:
    """The repr of a value, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: Any) -> str:
    """What a value is, for an error message: "None" or "a <type>"."""
    return "None" if value is None else f"a {type(value).__name__}"


def is_real(x: Any) -> bool:
    """A real number a float can hold (not a bool)."""
    if not isinstance(x, numbers.Real) or isinstance(x, (bool, np.bool_)):
        return False
    try:
        float(x)
    except OverflowError:  # an int beyond float's range
        return False
    return True


def is_finite(x: Any) -> bool:
    """A real number (not a bool) that is finite."""
    return is_real(x) and math.isfinite(float(x))


def is_integer(x: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def length_1d(arr: Any) -> int:
    """The length of a 1-d array (or spec), -1 for any other number of dimensions."""
    return int(arr.shape[0]) if arr.ndim == 1 else -1


def as_ndarray(value: Any, label: str) -> np.ndarray:
    """The value, refused unless it is an ndarray."""
    if not isinstance(value, np.ndarray):
        raise Invalid(label, f"is {kind_of(value)}, not an ndarray")
    return value


def only_keys(d: Any, where: str, allowed: set) -> None:
    """Refuse anything but a JSON object whose keys are all in ``allowed``."""
    if not isinstance(d, dict):
        raise Invalid(where, f"must be a JSON object, got {kind_of(d)}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise Invalid(where, f"has unknown field {short(unknown[0])}")


def field_of(d: dict, key: str, kind: type, where: str) -> Any:
    """The value of ``d[key]``, refused unless present and of the given kind."""
    if not isinstance(d, dict) or key not in d:
        raise Invalid(where, f"has no field {key!r}")
    value = d[key]
    if not isinstance(value, kind):
        raise Invalid(f"{where}.{key}", f"must be a {kind.__name__}, got {kind_of(value)}")
    return value


def check_kind(desc: Any, t: str, where: str) -> None:
    """Refuse a description whose kind ``t`` is not the one expected."""
    if not isinstance(desc, dict):
        raise Invalid(where, f"must be a JSON object, got {kind_of(desc)}")
    if desc.get("t") != t:
        raise Invalid(where, f"has kind {short(desc.get('t'))}; expected {t!r}")


def decode_scalar(desc: Any, where: str) -> Any:
    """A number, string, bool or None: kinds ``plain``, ``bool`` and ``np`` only."""
    if not isinstance(desc, dict):
        raise Invalid(where, f"must be a JSON object, got {kind_of(desc)}")
    t = desc.get("t")
    if t in ("plain", "bool"):
        only_keys(desc, where, {"t", "v"})
        v = desc.get("v")
        if t == "bool" and not isinstance(v, bool):
            raise Invalid(where, f"must hold true or false, got {short(v)}")
        if not isinstance(v, (str, int, float, type(None))):
            raise Invalid(where, f"must hold a number, string or null, got {kind_of(v)}")
        return v
    if t == "np":
        only_keys(desc, where, {"t", "dtype", "v"})
        dtype_name: Any = desc.get("dtype")
        dtype = SCALAR_DTYPES.get(dtype_name)
        v = desc.get("v")
        if dtype is None or not isinstance(v, (int, float, bool)):
            raise Invalid(where, f"is a numpy scalar of dtype {short(desc.get('dtype'))} holding "
                       f"{short(v)}; expected a numeric dtype and a number")  # fmt: skip
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return dtype.type(v)
        except (OverflowError, ValueError, TypeError, RuntimeWarning) as exc:
            raise Invalid(where, f"holds {short(v)}, which is not a {dtype.name} ({exc})") from None
    raise Invalid(where, f"has kind {short(t)}; expected a number, string, bool or null")


def decode_param(desc: Any, where: str) -> Any:
    """A parameter's value: a scalar, or a list or tuple of scalars."""
    if isinstance(desc, dict) and desc.get("t") in ("list", "tuple"):
        only_keys(desc, where, {"t", "items"})
        items = [decode_scalar(x, f"{where}[]") for x in field_of(desc, "items", list, where)]
        return tuple(items) if desc["t"] == "tuple" else items
    return decode_scalar(desc, where)


def decode_objects(desc: dict, where: str) -> np.ndarray:
    """Ids given inline in the manifest: a list of strings or numbers, as an object array."""
    only_keys(desc, where, {"t", "dtype", "v"})
    dtype = desc.get("dtype")
    if not isinstance(dtype, str) or not (dtype == "|O" or dtype[:2] in ("<U", ">U", "|U")):
        raise Invalid(where, f"has dtype {short(dtype)}; expected object or string ids")
    values = field_of(desc, "v", list, where)
    for v in values:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise Invalid(where, f"holds {kind_of(v)}; ids are strings or numbers")
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def decode_titles(desc: Any, where: str) -> dict | None:
    """The item titles (a dict of raw id to title), or None."""
    if isinstance(desc, dict) and desc.get("t") == "plain" and desc.get("v") is None:
        return None
    check_kind(desc, "dict", where)
    only_keys(desc, where, {"t", "keys", "plain", "values"})
    keys = field_of(desc, "keys", list, where)
    if "plain" in desc:
        values = field_of(desc, "plain", list, where)
    else:
        values = [
            decode_scalar(v, f"{where}.values") for v in field_of(desc, "values", list, where)
        ]
    if len(keys) != len(values):
        raise Invalid(where, f"has {len(keys)} keys and {len(values)} values")
    for x in (*keys, *values):
        if not isinstance(x, (str, int, float, bool, type(None), np.generic)):
            raise Invalid(
                where, f"holds {kind_of(x)}; titles and their keys are strings or numbers"
            )
    return dict(zip(keys, values, strict=True))


def decode_generator(desc: Any, where: str) -> np.random.Generator:
    """A random generator of an allowed bit generator, with its saved state."""
    check_kind(desc, "generator", where)
    only_keys(desc, where, {"t", "bit_generator", "state"})
    name = desc.get("bit_generator")
    if name not in BIT_GENERATORS:
        raise Invalid(where, f"names bit generator {short(name)}; fastmf reads "
                   f"{', '.join(BIT_GENERATORS)} only")  # fmt: skip
    state = field_of(desc, "state", dict, where)
    if state.get("bit_generator") != name:
        raise Invalid(where, f"holds the state of {short(state.get('bit_generator'))}, not {name}")
    bit_generator = np.random.PCG64() if name == "PCG64" else np.random.PCG64DXSM()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise Invalid(
            where, f"holds an invalid {name} state ({type(exc).__name__}: {exc})"
        ) from None
    return np.random.Generator(bit_generator)
