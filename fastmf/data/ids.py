"""The maps between raw ids (ints or strings) and the dense int32 indices the kernels use."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from fastmf._kernels import ids as idk
from fastmf._kernels import sorting as sk
from fastmf._kernels.jit import SERIAL_BELOW
from fastmf._threads import KERNEL_LOCK, current_threads
from fastmf.data._id_values import (
    MISSING,
    check_floats,
    int_objects,
    kind_of,
    object_ids,
    refuse_float,
    whole_floats,
)

_INT64_MAX = int(np.iinfo(np.int64).max)
_UINT64_MAX = int(np.iinfo(np.uint64).max)


class IdMap:
    """Maps raw ids (ints or strings) to dense int32 indices ``0..n-1`` and back.

    Integer ids of any width work, uint64 ids above the int64 range included; floats that hold
    whole numbers (ids that came back from a pandas merge as 1.0, 2.0) are the integers they
    hold. Lookups compare values, not dtypes: an int64 id, a uint8 id, the float 7.0 and the
    text ``"7"`` all find the id 7, and an id no dtype of the map can hold is simply unknown.

    Parameters
    ----------
    ids : array-like of shape (n,)
        The raw id of each index, all distinct.
    """

    def __init__(self, ids: Iterable[Hashable] | np.ndarray):
        self.ids = normalize_ids(ids, column="ids")
        self._index: pd.Index | None = None
        self._table: np.ndarray | None = None
        self._table_base: Any = 0
        self._keys: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, dtype={self.ids.dtype})"

    def __getstate__(self) -> dict[str, Any]:
        return {"ids": self.ids}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["ids"])  # type: ignore[misc]

    def _build(self) -> None:
        ids = self.ids
        if ids.dtype.kind in "iu":
            # one key dtype for every integer map: int64, or uint64 when an id is past int64
            wide = ids.dtype == np.uint64 and len(ids) and int(ids.max()) > _INT64_MAX
            keys = ids.astype(np.uint64 if wide else np.int64, copy=False)
            self._keys = keys
            if len(keys):
                low, high = keys.min(), keys.max()
                if int(high) - int(low) <= 8 * len(keys) + 1_000_000:
                    table = np.full(int(high) - int(low) + 1, -1, dtype=np.int32)
                    table[(keys - low).astype(np.intp)] = np.arange(len(keys), dtype=np.int32)
                    self._table, self._table_base = table, low
                    return
            self._index = pd.Index(keys)
            return
        self._index = pd.Index(ids)

    def lookup(self, raw_ids: Any, *, missing: int = -1, column: str = "ids") -> np.ndarray:
        """Dense indices of ``raw_ids`` (int32, same shape); ids not in the map give ``missing``.

        Raises ValueError (naming ``column``, the value and its row) for a missing id (NaN,
        None) or a float that is not a whole number: such an id is an error upstream, not an
        unknown user or item.
        """
        if self._table is None and self._index is None:
            self._build()
        raw = np.asarray(raw_ids)
        shape = raw.shape if raw.ndim else (1,)
        flat = raw.reshape(-1)
        if self._keys is not None:
            out = self._lookup_ints(flat, column)
        else:
            assert self._index is not None
            looked_up = _as_lookup_objects(flat, column)
            out = self._index.get_indexer(looked_up).astype(np.int32)  # type: ignore[arg-type]
        if missing != -1:
            out[out == -1] = missing
        return out.reshape(shape)

    def _lookup_ints(self, raw: np.ndarray, column: str) -> np.ndarray:
        """Lookup in an integer map: every raw id turned into the map's key dtype, or unknown."""
        assert self._keys is not None
        if self._table is not None and self._keys.dtype == np.int64:
            out = self._lookup_in_table(raw, column)
            if out is not None:
                return out
        values, known = _as_key_ints(raw, self._keys.dtype, column)
        if known is None:
            return self._find(values)
        out = np.full(raw.shape[0], -1, dtype=np.int32)
        out[known] = self._find(values)
        return out

    def _lookup_in_table(self, raw: np.ndarray, column: str) -> np.ndarray | None:
        """The table lookup in one parallel pass for integer and float ids (None for other
        dtypes). Float ids that are not whole numbers are refused."""
        kind, size = raw.dtype.kind, raw.dtype.itemsize
        if kind == "i" or (kind == "u" and size < 8):
            values = raw if raw.dtype in (np.int32, np.int64) else raw.astype(np.int64)
            kernel = idk.lookup_ints
        elif kind == "f":
            values = raw.astype(np.float64, copy=False)
            kernel = idk.lookup_floats
        else:
            return None
        table, low = self._table, int(self._table_base)
        assert table is not None
        out = np.empty(values.shape[0], dtype=np.int32)
        with KERNEL_LOCK:
            kernel(values, table, np.int64(low), np.int64(low + table.shape[0] - 1), out)
        if kind == "f" and (out == idk.FRACTIONAL).any():
            check_floats(values, column)
        return out

    def _find(self, values: np.ndarray) -> np.ndarray:
        """Positions of ``values`` (already in the key dtype) in the map, -1 where absent."""
        if self._table is not None:
            table, low = self._table, self._table_base
            high = low + low.dtype.type(table.shape[0] - 1)
            inside = (values >= low) & (values <= high)
            out = np.full(values.shape[0], -1, dtype=np.int32)
            out[inside] = table[(values[inside] - low).astype(np.intp)]
            return out
        assert self._index is not None
        return self._index.get_indexer(values).astype(np.int32)  # type: ignore[arg-type]

    def index_of(self, raw_id: Hashable) -> int:
        """The dense index of one raw id; raises KeyError naming it when it is unknown."""
        one = np.empty(1, dtype=object)
        one[0] = raw_id
        idx = int(self.lookup(one)[0])
        if idx < 0:
            raise KeyError(f"unknown id {raw_id!r}: it was not in the training data")
        return idx


def normalize_ids(values: Any, *, column: str) -> np.ndarray:
    """Raw ids as a 1-d array of one kind: an integer dtype, or objects (strings, or integers
    too wide for 64 bits). Whole-number floats become integers.

    Raises ValueError for a missing id (NaN, None), a float that is not a whole number, or a
    wrong shape, and TypeError for booleans, ids of mixed types, or a dtype that holds no ids.
    Each message names ``column``, the first bad value and its row.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{column} must be 1-dimensional, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in "iu":
        return arr
    if kind == "f":
        return whole_floats(arr, column)
    if kind == "b":
        raise TypeError(f"{column} ids must be integers or strings, got booleans")
    if kind in "US":
        return arr.astype(object)
    if kind == "O":
        return object_ids(arr, column)
    raise TypeError(
        f"{column} ids must be integers or strings, got dtype {arr.dtype}; convert them with "
        f".astype(str) or .astype('int64')"
    )


def text_column(values: Any) -> bool:
    """Whether ``values`` is a pandas Series of a text dtype (``factorize_ids`` takes it as it is:
    an arrow-backed column turned into Python strings costs more than factorizing it)."""
    return isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype)


def factorize_ids(values: Any, *, column: str, copy: bool = True) -> tuple[np.ndarray, IdMap]:
    """Dense int32 codes of raw ids (sorted raw order) and their IdMap.

    With ``copy=False``, int32 ids that are already their codes (every id of 0..n-1 present)
    come back as the array given, not a copy. A pandas Series of text (``str``, arrow-backed
    or not) with no missing id is factorized as it is, never turned into Python strings."""
    codes, id_map, _ = factorize_and_count(values, column=column, copy=copy)
    return codes, id_map


def factorize_and_count(
    values: Any, *, column: str, copy: bool = True
) -> tuple[np.ndarray, IdMap, np.ndarray | None]:
    """``factorize_ids``, and how often each code occurs (int64) where the codes came from a
    table of the id range, whose pass counts them on the way (None for other ids)."""
    if text_column(values) and not values.hasnans:
        codes, uniques = pd.factorize(values, sort=True)
        return codes.astype(np.int32), IdMap(np.asarray(uniques, dtype=object)), None
    arr = normalize_ids(values, column=column)
    if arr.dtype.kind in "iu":
        if arr.size == 0:
            return np.empty(0, np.int32), IdMap(arr.astype(np.int64)), None
        if arr.dtype not in (np.int32, np.int64, np.uint64):
            arr = arr.astype(np.int64)
        low, high = _id_range(arr)
        if high - low <= 8 * arr.size + 1_000_000 and high <= _INT64_MAX:
            return _table_codes(arr, low, high, copy)
        wide = arr.dtype == np.uint64 and high > _INT64_MAX
        return (*_sparse_int_codes(arr if wide else arr.astype(np.int64, copy=False)), None)
    codes, uniques = pd.factorize(pd.Series(arr, copy=False), sort=True)
    return codes.astype(np.int32), IdMap(np.asarray(uniques, dtype=object)), None


def _id_range(arr: np.ndarray) -> tuple[int, int]:
    """The smallest and largest id: one parallel pass for a million int32 or int64 ids and
    more, numpy's min and max below."""
    if arr.dtype == np.uint64 or arr.shape[0] < SERIAL_BELOW:
        return int(arr.min()), int(arr.max())
    with KERNEL_LOCK:
        low, high = sk.int_range(arr, current_threads())
    return int(low), int(high)


def _table_codes(
    arr: np.ndarray, low: int, high: int, copy: bool
) -> tuple[np.ndarray, IdMap, np.ndarray]:
    """Codes of integer ids in ``low..high`` through a table of that range (parallel passes),
    and each code's count."""
    with KERNEL_LOCK:
        n_threads = current_threads()
        table, uniques, counts = sk.int_code_table(arr, np.int64(low), np.int64(high), n_threads)
        if not copy and low == 0 and uniques.shape[0] == high + 1 and arr.dtype == np.int32:
            return arr, IdMap(uniques), counts  # the ids are their own codes
        codes = np.empty(arr.shape[0], dtype=np.int32)  # numpy's buffer: fewer page faults
        sk.codes_from_table(arr, table, np.int64(low), codes)
    return codes, IdMap(uniques), counts


def _sparse_int_codes(arr: np.ndarray) -> tuple[np.ndarray, IdMap]:
    """Codes of integer ids spread too thin for a table: hashed to first-seen codes, then the
    few distinct ids sorted and the codes renumbered (one pass, not a sort of every id)."""
    codes, uniques = pd.factorize(arr, sort=False)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(order.shape[0], dtype=np.int32)
    rank[order] = np.arange(order.shape[0], dtype=np.int32)
    with KERNEL_LOCK:
        return sk.gather(rank, codes), IdMap(uniques[order])


# ---------------------------------------------------------------------------------------------
# lookups: raw ids turned into what a map holds


def _as_key_ints(
    raw: np.ndarray, key_dtype: np.dtype, column: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw lookup ids in an integer map's key dtype (int64 or uint64), and the mask of those
    that the key dtype can hold (None: all of them). Others are unknown."""
    kind = raw.dtype.kind
    lo, hi = (0, _UINT64_MAX) if key_dtype == np.uint64 else (-_INT64_MAX - 1, _INT64_MAX)
    if kind in "iu":
        info = np.iinfo(raw.dtype)
        if info.min >= lo and info.max <= hi:
            return raw.astype(key_dtype, copy=False), None
        if raw.dtype == np.uint64:  # into int64 keys: ids past int64 are unknown
            known = raw <= np.uint64(_INT64_MAX)
        else:  # signed into uint64 keys: negative ids are unknown
            known = raw >= 0
        return raw[known].astype(key_dtype), known
    if kind == "f":
        check_floats(raw, column)
        known = (raw >= float(lo)) & (raw < 2.0**64 if hi == _UINT64_MAX else raw < 2.0**63)
        return raw[known].astype(key_dtype), known
    if kind == "O":
        inferred = pd.api.types.infer_dtype(raw, skipna=False)
        if inferred == "integer":
            as_ints = int_objects(raw)
            if as_ints.dtype.kind in "iu":
                return _as_key_ints(as_ints, key_dtype, column)
        elif inferred == "floating":
            return _as_key_ints(raw.astype(np.float64), key_dtype, column)
    if kind in "USO":
        ints = _text_and_object_ints(raw, column)
        known = np.array([x is not None and lo <= x <= hi for x in ints], dtype=np.bool_)
        values = np.array([x for x, k in zip(ints, known, strict=True) if k], dtype=key_dtype)
        return values, known
    return np.empty(0, dtype=key_dtype), np.zeros(raw.shape[0], dtype=np.bool_)


def _text_and_object_ints(raw: np.ndarray, column: str) -> list[int | None]:
    """Each raw id as the integer it holds, or None when it holds none (then it is unknown).
    Text that spells an integer counts (raw ids from a command line are text)."""
    out: list[int | None] = []
    for row, x in enumerate(raw.tolist() if raw.dtype.kind in "US" else raw):
        kind = kind_of(x)
        if kind == "int":
            out.append(int(x))
        elif kind == "float":
            refuse_float(float(x), str(row), column)
            out.append(int(x))
        elif kind == "str":
            try:
                out.append(int(x.strip()))
            except ValueError:
                out.append(None)
        elif kind == MISSING:
            raise ValueError(
                f"{column} has missing ids (first: {x!r} at row {row}); drop or fill those rows "
                f"before predicting"
            )
        else:
            out.append(None)
    return out


def _as_lookup_objects(raw: np.ndarray, column: str) -> np.ndarray:
    """Raw lookup ids for a map of strings (or other objects): whole floats are ints, and a
    missing id or a fractional float is refused."""
    if raw.dtype.kind == "f":
        check_floats(raw, column)
        return raw.astype(object)
    if raw.dtype.kind in "US":
        return raw.astype(object)
    if raw.dtype.kind == "O" and pd.api.types.infer_dtype(raw, skipna=False) != "string":
        out = np.empty(raw.shape[0], dtype=object)
        for row, x in enumerate(raw):
            kind = kind_of(x)
            if kind == MISSING:
                raise ValueError(
                    f"{column} has missing ids (first: {x!r} at row {row}); drop or fill those "
                    f"rows before predicting"
                )
            if kind == "float":
                refuse_float(float(x), str(row), column)
                x = int(x)
            elif kind == "bool":
                x = None  # never equal to an id (True == 1 would otherwise match)
            out[row] = x
        return out
    return raw
