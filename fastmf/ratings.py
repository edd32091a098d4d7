"""The ratings container: rating triples in contiguous arrays and the maps between raw ids and
dense indices."""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from fastmf import _id_kernels as idk
from fastmf import _sort_kernels as sk
from fastmf._threads import KERNEL_LOCK
from fastmf._validation import (
    check_choice,
    check_index_array,
    check_ratings_values,
    check_same_length,
    first_rows,
)

DUPLICATE_POLICIES = ("error", "last")


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
            out = self._index.get_indexer(_as_lookup_objects(flat, column)).astype(np.int32)
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
            _check_floats(values, column)
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
        return self._index.get_indexer(values).astype(np.int32)

    def index_of(self, raw_id: Hashable) -> int:
        """The dense index of one raw id; raises KeyError naming it when it is unknown."""
        one = np.empty(1, dtype=object)
        one[0] = raw_id
        idx = int(self.lookup(one)[0])
        if idx < 0:
            raise KeyError(f"unknown id {raw_id!r}: it was not in the training data")
        return idx


_INT64_MAX = int(np.iinfo(np.int64).max)
_UINT64_MAX = int(np.iinfo(np.uint64).max)
_MISSING = "missing"


def _kind_of(x: Any) -> str:
    """The kind of one raw id: "int", "float", "str", "bytes", "missing", "bool" or a type name."""
    if x is None or x is pd.NA or x is pd.NaT:
        return _MISSING
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, numbers.Integral):
        return "int"
    if isinstance(x, (float, np.floating)):
        return _MISSING if np.isnan(x) else "float"
    if isinstance(x, str):
        return "str"
    if isinstance(x, bytes):
        return "bytes"
    return type(x).__name__


_KIND_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bytes": "bytes"}


def _whole_floats(arr: np.ndarray, column: str) -> np.ndarray:
    """Float ids as the integers they hold (int64, or uint64 past int64); raises ValueError
    naming the first id that is NaN, infinite or not a whole number."""
    _check_floats(arr, column)
    if arr.size and (arr.min() < -(2.0**63) or arr.max() >= 2.0**64):
        row = int(np.flatnonzero((arr < -(2.0**63)) | (arr >= 2.0**64))[0])
        raise ValueError(
            f"{column} id {float(arr[row])!r} at row {row} is outside the 64-bit integer range; "
            f"give the ids as integers or strings"
        )
    if arr.size and arr.max() >= 2.0**63:
        if arr.min() < 0:
            return _int_objects(np.array([int(x) for x in arr], dtype=object))
        return arr.astype(np.uint64)
    return arr.astype(np.int64)


def _int_objects(arr: np.ndarray) -> np.ndarray:
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


def _object_ids(arr: np.ndarray, column: str) -> np.ndarray:
    """Ids in an object array, all of one kind; integers (and whole floats) become an int array."""
    inferred = pd.api.types.infer_dtype(arr, skipna=False)
    if inferred in ("string", "bytes") or arr.size == 0:
        return arr
    if inferred == "integer":
        return _int_objects(arr)
    if inferred == "floating":
        return _whole_floats(arr.astype(np.float64), column)
    kinds = [_kind_of(x) for x in arr]
    seen: dict[str, int] = {}
    for row, kind in enumerate(kinds):
        if kind == _MISSING:
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
            f"{column} mixes ids of different types: {_plain(arr[ra])!r} "
            f"({_describe_kind(kinds[ra])}) at row {ra} and {_plain(arr[rb])!r} "
            f"({_describe_kind(kinds[rb])}) at row {rb}; give every "
            f"{column} id one type, e.g. convert the column with .astype(str) or pd.to_numeric"
        )
    if "number" in seen:
        for row, kind in enumerate(kinds):
            if kind == "float":
                _refuse_float(float(arr[row]), str(row), column)
        return _int_objects(np.array([int(x) for x in arr], dtype=object))
    return arr


def _describe_kind(kind: str) -> str:
    return _KIND_NAMES.get(kind, f"a {kind}")


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
        return _whole_floats(arr, column)
    if kind == "b":
        raise TypeError(f"{column} ids must be integers or strings, got booleans")
    if kind in "US":
        return arr.astype(object)
    if kind == "O":
        return _object_ids(arr, column)
    raise TypeError(
        f"{column} ids must be integers or strings, got dtype {arr.dtype}; convert them with "
        f".astype(str) or .astype('int64')"
    )


def _refuse_float(value: float, rows: str, column: str) -> None:
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


def _check_floats(raw: np.ndarray, column: str) -> None:
    """Refuse the first float id that is NaN or infinite, else the first that is not whole."""
    for bad in (~np.isfinite(raw), raw != np.floor(raw)):
        if bad.any():
            _refuse_float(float(raw[np.flatnonzero(bad)[0]]), first_rows(bad), column)


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
        _check_floats(raw, column)
        known = (raw >= float(lo)) & (raw < 2.0**64 if hi == _UINT64_MAX else raw < 2.0**63)
        return raw[known].astype(key_dtype), known
    if kind == "O":
        inferred = pd.api.types.infer_dtype(raw, skipna=False)
        if inferred == "integer":
            as_ints = _int_objects(raw)
            if as_ints.dtype.kind in "iu":
                return _as_key_ints(as_ints, key_dtype, column)
        elif inferred == "floating":
            return _as_key_ints(raw.astype(np.float64), key_dtype, column)
    if kind in "USO":
        ints = _text_and_object_ints(raw, column)
        known = np.array([x is not None and lo <= x <= hi for x in ints], dtype=np.bool_)
        values = np.array([x for x, k in zip(ints, known) if k], dtype=key_dtype)
        return values, known
    return np.empty(0, dtype=key_dtype), np.zeros(raw.shape[0], dtype=np.bool_)


def _text_and_object_ints(raw: np.ndarray, column: str) -> list[int | None]:
    """Each raw id as the integer it holds, or None when it holds none (then it is unknown).
    Text that spells an integer counts (raw ids from a command line are text)."""
    out: list[int | None] = []
    for row, x in enumerate(raw.tolist() if raw.dtype.kind in "US" else raw):
        kind = _kind_of(x)
        if kind == "int":
            out.append(int(x))
        elif kind == "float":
            _refuse_float(float(x), str(row), column)
            out.append(int(x))
        elif kind == "str":
            try:
                out.append(int(x.strip()))
            except ValueError:
                out.append(None)
        elif kind == _MISSING:
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
        _check_floats(raw, column)
        return raw.astype(object)
    if raw.dtype.kind in "US":
        return raw.astype(object)
    if raw.dtype.kind == "O" and pd.api.types.infer_dtype(raw, skipna=False) != "string":
        out = np.empty(raw.shape[0], dtype=object)
        for row, x in enumerate(raw):
            kind = _kind_of(x)
            if kind == _MISSING:
                raise ValueError(
                    f"{column} has missing ids (first: {x!r} at row {row}); drop or fill those "
                    f"rows before predicting"
                )
            if kind == "float":
                _refuse_float(float(x), str(row), column)
                x = int(x)
            elif kind == "bool":
                x = None  # never equal to an id (True == 1 would otherwise match)
            out[row] = x
        return out
    return raw


def factorize_ids(values: Any, *, column: str) -> tuple[np.ndarray, IdMap]:
    """Dense int32 codes of raw ids (sorted raw order) and their IdMap."""
    arr = normalize_ids(values, column=column)
    if arr.dtype.kind in "iu":
        if arr.size == 0:
            return np.empty(0, np.int32), IdMap(arr.astype(np.int64))
        low, high = int(arr.min()), int(arr.max())
        if high - low <= 8 * arr.size + 1_000_000 and high <= _INT64_MAX:
            if arr.dtype not in (np.int32, np.int64):
                arr = arr.astype(np.int64)
            with KERNEL_LOCK:
                codes, uniques = sk.dense_int_codes(arr, np.int64(low), np.int64(high))
            return codes, IdMap(uniques)
        wide = arr.dtype == np.uint64 and high > _INT64_MAX
        uniques, codes = np.unique(arr if wide else arr.astype(np.int64), return_inverse=True)
        return codes.astype(np.int32), IdMap(uniques)
    codes, uniques = pd.factorize(pd.Series(arr, copy=False), sort=True)
    return codes.astype(np.int32), IdMap(np.asarray(uniques, dtype=object))


class Ratings:
    """Rating triples in contiguous arrays, with the maps from raw ids to dense indices.

    Attributes
    ----------
    users, items : ndarray of shape (n_ratings,), dtype int32
        Dense user and item index of each rating.
    values : ndarray of shape (n_ratings,), dtype float32
        The ratings.
    timestamps : ndarray of shape (n_ratings,), dtype int64, or None
    user_map, item_map : IdMap
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        values: np.ndarray,
        user_map: IdMap,
        item_map: IdMap,
        timestamps: np.ndarray | None = None,
    ):
        self.users = np.ascontiguousarray(users, dtype=np.int32)
        self.items = np.ascontiguousarray(items, dtype=np.int32)
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.timestamps = (
            None if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.int64)
        )
        self.user_map = user_map
        self.item_map = item_map

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __repr__(self) -> str:
        return f"Ratings(n_ratings={len(self)}, n_users={self.n_users}, n_items={self.n_items})"

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str = "rating",
        timestamp_col: str | None = "timestamp",
        duplicates: str = "error",
    ) -> Ratings:
        """Ratings from a DataFrame with one row per rating (raw ids in the user and item columns)."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of ratings, got {type(df).__name__}")
        missing = [c for c in (user_col, item_col, rating_col) if c not in df.columns]
        if missing:
            raise ValueError(
                f"the ratings DataFrame has no column {', '.join(map(repr, missing))} (its "
                f"columns: {list(df.columns)}); name them with user_col=, item_col=, rating_col="
            )
        timestamps = None
        if timestamp_col is not None and timestamp_col in df.columns:
            timestamps = _timestamps(df[timestamp_col], timestamp_col)
        return cls.from_arrays(
            df[user_col].to_numpy(),
            df[item_col].to_numpy(),
            df[rating_col].to_numpy(),
            timestamps,
            duplicates=duplicates,
            columns=(user_col, item_col, rating_col),
        )

    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        ratings: Any,
        timestamps: Any = None,
        *,
        duplicates: str = "error",
        columns: tuple[str, str, str] = ("user", "item", "rating"),
    ) -> Ratings:
        """Ratings from arrays of raw user ids, raw item ids and ratings."""
        check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
        user_col, item_col, rating_col = columns
        users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings)
        lengths = {user_col: users, item_col: items, rating_col: ratings}
        if timestamps is not None:
            timestamps = np.asarray(timestamps)
            lengths["timestamp"] = timestamps
        check_same_length(**lengths)
        values = check_ratings_values(ratings, column=rating_col).astype(np.float32)
        u_codes, user_map = factorize_ids(users, column=user_col)
        i_codes, item_map = factorize_ids(items, column=item_col)
        out = cls(u_codes, i_codes, values, user_map, item_map, timestamps)
        return out._resolve_duplicates(duplicates, (user_col, item_col))

    @classmethod
    def from_indices(
        cls,
        users: Any,
        items: Any,
        ratings: Any,
        *,
        n_users: int | None = None,
        n_items: int | None = None,
        timestamps: Any = None,
        duplicates: str = "error",
    ) -> Ratings:
        """Ratings whose users and items are already dense indices (the ids are the indices)."""
        check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
        check_same_length(
            users=np.asarray(users), items=np.asarray(items), ratings=np.asarray(ratings)
        )
        u = check_index_array(users, name="users", upper=n_users)
        i = check_index_array(items, name="items", upper=n_items)
        values = check_ratings_values(ratings).astype(np.float32)
        n_users = int(u.max()) + 1 if n_users is None else n_users
        n_items = int(i.max()) + 1 if n_items is None else n_items
        out = cls(u, i, values, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), timestamps)
        return out._resolve_duplicates(duplicates, ("users", "items"))

    @classmethod
    def from_sparse(cls, matrix: Any, *, duplicates: str = "error") -> Ratings:
        """Ratings from a scipy.sparse matrix: rows are users, columns items, stored entries
        ratings (explicit zeros count as ratings)."""
        if not hasattr(matrix, "tocoo"):
            raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
        coo = matrix.tocoo()
        n_users, n_items = coo.shape
        if coo.nnz == 0:
            raise ValueError("no ratings given: the sparse matrix stores no entries")
        return cls.from_indices(
            coo.row, coo.col, coo.data, n_users=n_users, n_items=n_items, duplicates=duplicates
        )

    def _resolve_duplicates(self, policy: str, names: tuple[str, str]) -> Ratings:
        """Raise on repeated (user, item) pairs, or keep the last of each (``policy="last"``).

        The ratings come back in (user, item) order, which every later layout builds on cheaply.
        """
        if sk.is_sorted_by_user_item(self.users, self.items):
            return self
        with KERNEL_LOCK:
            order, offsets = sk.stable_bucket_order(self.users, self.n_users)
            unsorted = sk.sort_segments_by_item(order, offsets, self.items)
        if unsorted > 0:
            first, last = sk.find_duplicates(order, offsets, self.users, self.items)
        else:
            first = last = np.empty(0, dtype=np.int64)
        if first.size and policy == "error":
            row, again = int(first[0]), int(last[0])
            raise ValueError(
                f"{first.size} duplicate ({names[0]}, {names[1]}) pairs: the pair "
                f"({_plain(self.user_map.ids[self.users[row]])!r}, "
                f"{_plain(self.item_map.ids[self.items[row]])!r}) "
                f"is at rows {row} and {again}; pass duplicates='last' to keep the last rating "
                f"of each pair"
            )
        if first.size:
            keep = np.ones(len(self), dtype=np.bool_)
            keep[first] = False
            order = order[keep[order]]
        with KERNEL_LOCK:
            ts = None if self.timestamps is None else sk.gather(self.timestamps, order)
            users, items = sk.gather(self.users, order), sk.gather(self.items, order)
            values = sk.gather(self.values, order)
        return Ratings(users, items, values, self.user_map, self.item_map, ts)

    def subset(self, rows: np.ndarray) -> Ratings:
        """The ratings at ``rows`` (a boolean mask or indices), with the same id maps."""
        ts = None if self.timestamps is None else self.timestamps[rows]
        return Ratings(
            self.users[rows], self.items[rows], self.values[rows], self.user_map, self.item_map, ts
        )

    def to_dataframe(self) -> pd.DataFrame:
        """The ratings as a DataFrame of raw ids: columns user, item, rating[, timestamp]."""
        data = {
            "user": self.user_map.ids[self.users],
            "item": self.item_map.ids[self.items],
            "rating": self.values,
        }
        if self.timestamps is not None:
            data["timestamp"] = self.timestamps
        return pd.DataFrame(data)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _timestamps(column: pd.Series, name: str) -> np.ndarray:
    """A timestamp column as int64 seconds (datetimes are converted)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return (column.astype("datetime64[s]").astype("int64")).to_numpy()
    arr = column.to_numpy()
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold numbers or datetimes, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(
            f"{name} has missing values (first at rows {first_rows(~np.isfinite(arr))}); fill "
            f"them or pass timestamp_col=None"
        )
    return arr.astype(np.int64)
