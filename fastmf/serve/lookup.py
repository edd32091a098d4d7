"""From raw ids to the model's rows and back: id maps, lookups, seen items, titles."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "item_rows",
    "trained_pairs",
    "user_rows",
    "EMPTY_I32",
    "coerce_id",
    "index_of",
    "item_map",
    "lookup",
    "raw_ids",
    "seen_csr",
    "titles_of",
    "user_map",
]

EMPTY_I32 = np.zeros(0, dtype=np.int32)


def user_map(model: Any) -> Any:
    """The model's user IdMap."""
    return _id_map(model, "user_map_", "user_ids_")


def item_map(model: Any) -> Any:
    """The model's item IdMap."""
    return _id_map(model, "item_map_", "item_ids_")


def _id_map(model: Any, map_name: str, ids_name: str) -> Any:
    """The model's IdMap, built from its raw ids when the model has none (built by hand)."""
    id_map = getattr(model, map_name, None)
    if id_map is None:
        from fastmf.data.ids import IdMap

        id_map = IdMap(getattr(model, ids_name))
        with contextlib.suppress(AttributeError):
            setattr(model, map_name, id_map)
    return id_map


def lookup(id_map: Any, values: Any, ids: np.ndarray) -> np.ndarray:
    """Dense indices (int64) of raw ids, -1 for unknown ones. Text that spells an integer
    matches an integer id (raw ids from a command line are text): ``IdMap.lookup`` handles it."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        arr = values.reshape(-1)
    else:
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(id_map.lookup(arr), dtype=np.int64)


def coerce_id(raw: Any, ids: np.ndarray) -> Any:
    """One raw id converted to the type of the model's ids: text that spells an integer becomes
    an int when the ids are integers (or an object array whose ids are ints)."""
    if isinstance(raw, np.generic):
        raw = raw.item()
    if isinstance(raw, str):
        wants_int = ids.dtype.kind in "iu" or (
            ids.dtype == object and ids.shape[0] and isinstance(ids[0], numbers.Integral)
        )
        if wants_int:
            try:
                return int(raw.strip())
            except ValueError:
                return raw
    return raw


def index_of(id_map: Any, raw: Any, ids: np.ndarray, what: str) -> int:
    """The dense index of one raw id; KeyError when the model does not know it."""
    idx = int(lookup(id_map, [raw], ids)[0])
    if idx < 0:
        raise KeyError(f"unknown {what} {raw!r}: it was not in the model's training data")
    return idx


def seen_csr(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """The items each user rated in training, as (indptr int64, items int32); empty rows when
    the model holds no seen items."""
    indptr = getattr(model, "seen_indptr_", None)
    items = getattr(model, "seen_items_", None)
    if indptr is None or items is None:
        n_users = model.user_factors_.shape[0]
        return np.zeros(n_users + 1, dtype=np.int64), EMPTY_I32
    return (
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(items, dtype=np.int32),
    )


def raw_ids(ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Raw ids at dense indices ``idx`` (any shape); -1 gives -1 for integer ids, else None."""
    safe = np.maximum(idx, 0)
    out = ids[safe]
    pad = idx < 0
    if pad.any():
        if out.dtype.kind in "iu":
            out = out.astype(np.int64, copy=False)
            out[pad] = -1
        else:
            out = out.astype(object)
            out[pad] = None
    return out


def titles_of(items: np.ndarray, titles: Mapping[Hashable, str]) -> np.ndarray:
    """The title of each raw item id (None when it has none), as an object array."""
    out = np.empty(len(items), dtype=object)
    for j, it in enumerate(items):
        key = it.item() if isinstance(it, np.generic) else it
        out[j] = titles.get(key)
    return out


def user_rows(model: Any, users: Any) -> np.ndarray:
    """The model row (int64) of each raw user id, -1 for users the model does not know."""
    return lookup(user_map(model), np.asarray(users), model.user_ids_)


def item_rows(model: Any, items: Any) -> np.ndarray:
    """The model row (int64) of each raw item id, -1 for items the model does not know."""
    return lookup(item_map(model), np.asarray(items), model.item_ids_)


def trained_pairs(model: Any, users: Any, items: Any) -> np.ndarray:
    """A boolean mask of the (user, item) pairs that are in the model's training data."""
    u, i = user_rows(model, users), item_rows(model, items)
    indptr, seen = seen_csr(model)
    n_items = model.item_factors_.shape[0]
    known = (u >= 0) & (i >= 0)
    hit = np.zeros(u.shape[0], dtype=bool)
    if seen.shape[0] == 0:
        return hit
    # training pairs as sorted keys user * n_items + item; membership by binary search
    owners = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
    keys = owners * n_items + seen.astype(np.int64)
    query = u[known] * n_items + i[known]
    pos = np.searchsorted(keys, query)
    hit[known] = (pos < keys.shape[0]) & (keys[np.minimum(pos, keys.shape[0] - 1)] == query)
    return hit
