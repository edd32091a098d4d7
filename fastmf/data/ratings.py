"""The ratings container: rating triples in contiguous arrays, in (user, item) order, with the
maps between raw ids and dense indices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastmf._kernels import sorting as sk
from fastmf._threads import KERNEL_LOCK
from fastmf._validation import (
    check_choice,
    check_index_array,
    check_ratings_values,
    check_same_length,
    first_rows,
)
from fastmf.data._id_values import plain_value
from fastmf.data.ids import IdMap, factorize_and_count, text_column

DUPLICATE_POLICIES = ("error", "last")


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
        # the ratings of each user and item index (int64), when ``from_arrays(ordered=False)``
        # counted them with the codes: for the fit that asked for them to take (``take_counts``)
        self._index_counts: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def take_counts(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The ratings of each user and item index counted on the way in (``from_arrays`` with
        ``ordered=False``), once: None after the first call, or when they were not counted."""
        counts, self._index_counts = self._index_counts, None
        return counts

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
        ordered: bool = True,
    ) -> Ratings:
        """Ratings from a DataFrame with one row per rating (raw ids in the user and item
        columns). ``ordered=False`` keeps the rows' order and leaves the duplicate check to
        the caller (a fit checks them while it lays the ratings out)."""
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
            _id_column(df[user_col]),
            _id_column(df[item_col]),
            df[rating_col].to_numpy(),
            timestamps,
            duplicates=duplicates,
            columns=(user_col, item_col, rating_col),
            ordered=ordered,
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
        ordered: bool = True,
    ) -> Ratings:
        """Ratings from arrays of raw user ids, raw item ids and ratings (``ordered=False``: see
        ``from_dataframe``; the arrays may then be the given ones)."""
        check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
        user_col, item_col, rating_col = columns
        users, items = _id_column(users), _id_column(items)  # text Series stay Series
        ratings = np.asarray(ratings)
        lengths = {user_col: users, item_col: items, rating_col: ratings}
        if timestamps is not None:
            timestamps = np.asarray(timestamps)
            lengths["timestamp"] = timestamps
        check_same_length(**lengths)
        values = check_ratings_values(ratings, column=rating_col).astype(np.float32, copy=False)
        u_codes, user_map, u_counts = factorize_and_count(users, column=user_col, copy=False)
        i_codes, item_map, i_counts = factorize_and_count(items, column=item_col, copy=False)
        out = cls(u_codes, i_codes, values, user_map, item_map, timestamps)
        if not ordered:
            if u_counts is not None and i_counts is not None:  # counted with the codes
                out._index_counts = (u_counts, i_counts)
            return out
        out = out._resolve_duplicates(duplicates, (user_col, item_col))
        for name, given in (("users", users), ("items", items), ("values", ratings)):
            mine = getattr(out, name)
            if isinstance(given, np.ndarray) and np.may_share_memory(mine, given):
                setattr(out, name, mine.copy())  # sorted already: copy the input
        return out

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

        The ratings come back in (user, item) order, which every later layout builds on cheaply:
        two stable counting sorts (by item, then by user) that move the triples themselves.
        """
        with KERNEL_LOCK:
            in_order = sk.sorted_by_user_item(self.users, self.items)
        if in_order:
            return self
        extra = np.empty(0, np.int64) if self.timestamps is None else self.timestamps
        with KERNEL_LOCK:
            users, items, values, ts, repeats = sk.sort_by_user_item(
                self.users, self.items, self.values, extra, self.n_users, self.n_items
            )
        if repeats and policy == "error":
            self._raise_duplicates(int(repeats), users, items, names)
        if repeats:  # keep the last row of each run of equal pairs (the sorts are stable)
            keep = np.ones(len(users), dtype=np.bool_)
            keep[:-1] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
            users, items, values = users[keep], items[keep], values[keep]
            ts = ts[keep] if self.timestamps is not None else ts
        return Ratings(
            users, items, values, self.user_map, self.item_map,
            None if self.timestamps is None else ts,
        )  # fmt: skip

    def _raise_duplicates(
        self, repeats: int, users: np.ndarray, items: np.ndarray, names: tuple[str, str]
    ) -> None:
        """The error for repeated pairs, naming the first pair (in (user, item) order) and the
        first and last rows that hold it; ``users``/``items`` are the sorted indices."""
        same = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
        at = int(np.flatnonzero(same)[0]) + 1
        u, i = users[at], items[at]
        rows = np.flatnonzero((self.users == u) & (self.items == i))
        raise ValueError(
            f"{repeats} duplicate ({names[0]}, {names[1]}) pairs: the pair "
            f"({plain_value(self.user_map.ids[u])!r}, {plain_value(self.item_map.ids[i])!r}) "
            f"is at rows {int(rows[0])} and {int(rows[-1])}; pass duplicates='last' to keep the "
            f"last rating of each pair"
        )

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


def _id_column(ids: Any) -> Any:
    """An id column as an array, or a Series of text as it is (``factorize_ids`` reads it)."""
    return ids if text_column(ids) else np.asarray(ids)


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
