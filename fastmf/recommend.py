"""Serving a fitted model: top-n recommendations, similar items and users, and fold-in.

Scores are the model's predicted ratings ``mu + b_u + b_i + p_u . q_i`` (not clipped). Many users
are served in chunks of rows, and each chunk in tiles of candidates: BLAS computes one tile of dot
products into a small buffer, then a Numba kernel offers it to each row's running top n (a heap:
partial selection, no sort), so memory never grows with users x items.

Parallelism: with more than one chunk, ``n_jobs`` worker threads each take whole chunks (BLAS
limited to one thread meanwhile, through threadpoolctl) and run GEMM and selection on their own
buffer and their own output rows; the kernel releases the GIL. Alternating a multi-threaded GEMM
with a parallel Numba loop was twice as slow: each side's idle threads spin while the other works.
Without threadpoolctl, or with one chunk, the tiles go through multi-threaded BLAS and the
``prange`` kernel instead.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
import warnings
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastmf import _rank_kernels as rk
from fastmf._threads import KERNEL_LOCK, numba_threads, threads_for
from fastmf._validation import check_int

__all__ = [
    "FoldedUser",
    "Recommendations",
    "fold_in",
    "recommend",
    "recommend_many",
    "similar_items",
    "similar_users",
]

# Scores are computed in tiles of (up to) _TILE_ROWS rows x _TILE_BYTES / (rows * itemsize)
# candidates: 256 x 2048 float32 (2 MB) stays in a core's L2 cache between BLAS writing it and
# the selection kernel reading it, and keeps BLAS near its peak (measured on ML-25M shapes).
_TILE_ROWS = 256
_TILE_BYTES = 2 * 2**20

try:  # keeps BLAS to one thread while worker threads each run their own GEMM
    import threadpoolctl  # noqa: F401

    _HAS_THREADPOOLCTL = True
except ImportError:  # pragma: no cover - then the single-threaded-chunk path is used
    _HAS_THREADPOOLCTL = False

_FITTED = (
    "global_mean_",
    "user_bias_",
    "item_bias_",
    "user_factors_",
    "item_factors_",
    "user_ids_",
    "item_ids_",
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class FoldedUser:
    """A user solved against the fixed item factors of a model, by :func:`fold_in`.

    Pass it wherever a user id is accepted by :func:`recommend` and :func:`similar_users` (or
    ``model.recommend``) to serve a user who arrived after training.

    Attributes
    ----------
    user_bias : float
        The user's bias ``b_u``.
    user_factors : ndarray of shape (n_factors,)
        The user's factors ``p_u``, in the model's dtype.
    seen_items : ndarray of shape (n_seen,), dtype int32
        Item indices of the model that the user rated (sorted); excluded from recommendations.
    n_ignored : int
        Ratings of items the model does not know, left out of the solve.
    """

    user_bias: float
    user_factors: np.ndarray
    seen_items: np.ndarray
    n_ignored: int = 0
    model: Any = field(default=None, repr=False)

    def predict(self, items: Any, *, clip: bool = True) -> np.ndarray:
        """Predicted ratings of raw item ids for this user (items unknown to the model get
        ``mu + b_u``), clipped to the model's rating scale unless ``clip=False``."""
        model = self.model
        idx = _lookup(_item_map(model), items, model.item_ids_)
        known = idx >= 0
        out = np.full(idx.shape, model.global_mean_ + self.user_bias, dtype=np.float64)
        q = model.item_factors_[idx[known]].astype(np.float64)
        out[known] += model.item_bias_[idx[known]] + q @ self.user_factors.astype(np.float64)
        if clip and getattr(model, "rating_scale_", None) is not None:
            low, high = model.rating_scale_
            np.clip(out, low, high, out=out)
        return out


@dataclass(frozen=True, eq=False)
class Recommendations:
    """Top-n lists of many users, from :func:`recommend_many`, best first in each row.

    Attributes
    ----------
    users : ndarray of shape (n_users,)
        The raw user ids asked for, in order.
    items : ndarray of shape (n_users, n)
        Raw item ids. Rows with fewer than n candidates are padded at the end; padded entries
        hold -1 (integer ids) or None (other ids): use ``counts`` or ``scores`` (NaN there).
    scores : ndarray of shape (n_users, n)
        Predicted ratings ``mu + b_u + b_i + p_u . q_i`` (for a fallback user, ``mu + b_i``).
    counts : ndarray of shape (n_users,), dtype int64
        Number of valid entries in each row.
    fallback : ndarray of shape (n_users,), dtype bool
        True for users unknown to the model: they get the items with the highest ``mu + b_i``.
    item_indices : ndarray of shape (n_users, n), dtype int32
        The model's item index of each entry (-1 where padded).
    titles : dict or None
        The model's ``item_titles_``, used by :meth:`to_frame`.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    fallback: np.ndarray
    item_indices: np.ndarray
    titles: Mapping[Hashable, str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per (user, recommended item): columns user, rank (1 = best), item, score,
        title (when the model has titles) and fallback; padding left out."""
        valid = self.item_indices >= 0
        rows, cols = np.nonzero(valid)
        data: dict[str, Any] = {
            "user": self.users[rows],
            "rank": (cols + 1).astype(np.int64),
            "item": self.items[rows, cols],
            "score": self.scores[rows, cols],
        }
        if self.titles is not None:
            data["title"] = _titles_of(data["item"], self.titles)
        data["fallback"] = self.fallback[rows]
        return pd.DataFrame(data)


# --------------------------------------------------------------------------- public functions


def recommend(
    model: Any,
    user: Hashable | FoldedUser,
    n: int = 10,
    exclude_seen: bool = True,
    items: Sequence[Hashable] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The top-``n`` items for one user, best first.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    user : raw user id or FoldedUser
        A user of the training data, a :class:`FoldedUser` from :func:`fold_in`, or any other
        id: a user unknown to the model gets the items with the highest ``mu + b_i``, marked
        ``fallback``.
    n : int, default 10
        Length of the list (shorter when fewer candidates remain).
    exclude_seen : bool, default True
        Leave out the items the user rated in training (or in the fold-in ratings).
    items : array-like of raw item ids, optional
        Rank only these items (all the model's items when None).

    Returns
    -------
    DataFrame
        Columns ``item`` (raw id), ``score`` (predicted rating, not clipped), ``title`` (when
        the model has ``item_titles_``) and ``fallback`` (True for an unknown user).
    """
    recs = recommend_many(model, [user], n=n, exclude_seen=exclude_seen, items=items)
    frame = recs.to_frame().drop(columns=["user", "rank"])
    frame.attrs["fallback"] = bool(recs.fallback[0])
    return frame


def recommend_many(
    model: Any,
    users: Sequence[Hashable | FoldedUser] | np.ndarray,
    n: int = 10,
    exclude_seen: bool = True,
    items: Sequence[Hashable] | np.ndarray | None = None,
) -> Recommendations:
    """The top-``n`` items of many users at once, in parallel and in bounded memory.

    Users are processed in chunks of 256 and candidates in tiles of about 2 MB of scores: BLAS
    computes a tile, then a Numba kernel offers it to each user's running top n (a heap; no
    sort). ``model.n_jobs`` worker threads take whole chunks, each owning its users' output
    rows. Memory is the output plus one tile per thread, whatever the number of users.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    users : sequence of raw user ids or FoldedUser
        Unknown ids get the fallback list (highest ``mu + b_i``).
    n : int, default 10
        Length of each list.
    exclude_seen : bool, default True
        Leave out the items each user rated in training.
    items : array-like of raw item ids, optional
        Rank only these items (all the model's items when None).

    Returns
    -------
    Recommendations
        Arrays ``items``, ``scores`` (n_users, n) and ``fallback`` (n_users,); ``to_frame()``
        gives a long DataFrame.
    """
    _check_fitted(model)
    n = check_int(n, "n", low=1)
    users_arr = _as_user_array(users)
    cand = _candidates(model, items)
    width = min(n, cand.shape[0])

    m = users_arr.shape[0]
    folded = np.zeros(m, dtype=np.bool_)
    if users_arr.dtype == object:
        folded[:] = [isinstance(u, FoldedUser) for u in users_arr]
    idx = np.full(m, -1, dtype=np.int64)
    plain = ~folded
    if plain.any():
        idx[plain] = _lookup(_user_map(model), users_arr[plain], model.user_ids_)
    fallback = plain & (idx < 0)

    dtype = model.item_factors_.dtype
    k = model.item_factors_.shape[1]
    P = np.zeros((m, k), dtype=dtype)
    bu = np.zeros(m, dtype=dtype)
    known = idx >= 0
    P[known] = model.user_factors_[idx[known]]
    bu[known] = model.user_bias_[idx[known]]
    excl_lists: list[np.ndarray] = [_EMPTY_I32] * m
    for r in np.flatnonzero(folded):
        fu = _check_folded(model, users_arr[r])
        P[r] = fu.user_factors
        bu[r] = fu.user_bias
        excl_lists[r] = fu.seen_items

    seen_ptr, seen_items = _seen_csr(model)
    if exclude_seen:
        start = np.zeros(m, dtype=np.int64)
        end = np.zeros(m, dtype=np.int64)
        start[known] = seen_ptr[idx[known]]
        end[known] = seen_ptr[idx[known] + 1]
        if folded.any():
            # Folded users' seen items go after the training CSR, in one extra array.
            extra = np.concatenate([excl_lists[r] for r in np.flatnonzero(folded)])
            offsets = np.cumsum([0] + [excl_lists[r].shape[0] for r in np.flatnonzero(folded)])
            start[folded] = seen_items.shape[0] + offsets[:-1]
            end[folded] = seen_items.shape[0] + offsets[1:]
            seen_items = np.concatenate([seen_items, extra.astype(np.int32)])
    else:
        start = np.zeros(m, dtype=np.int64)
        end = np.zeros(m, dtype=np.int64)

    pos = np.full((m, width), -1, dtype=np.int32)
    part = np.full((m, width), -np.inf, dtype=dtype)
    scored = np.flatnonzero(~fallback)
    with _threads(model) as n_threads:
        if scored.shape[0]:
            s_pos, s_part = _topk_chunked(
                P[scored],
                model.item_factors_,
                model.item_bias_,
                cand,
                start[scored],
                end[scored],
                seen_items,
                width,
                n_threads,
            )
            pos[scored] = s_pos
            part[scored] = s_part
        if fallback.any():
            f_pos, f_part = _topk_chunked(
                np.zeros((1, k), dtype=dtype),
                model.item_factors_,
                model.item_bias_,
                cand,
                np.zeros(1, np.int64),
                np.zeros(1, np.int64),
                _EMPTY_I32,
                width,
            )
            pos[fallback] = f_pos[0]
            part[fallback] = f_part[0]

    item_idx = np.where(pos >= 0, cand[np.maximum(pos, 0)], -1).astype(np.int32)
    valid = item_idx >= 0
    scores = (part + (model.global_mean_ + bu)[:, None]).astype(dtype, copy=False)
    scores[~valid] = np.nan
    return Recommendations(
        users=users_arr,
        items=_raw_ids(model.item_ids_, item_idx),
        scores=scores,
        counts=valid.sum(axis=1).astype(np.int64),
        fallback=fallback,
        item_indices=item_idx,
        titles=getattr(model, "item_titles_", None),
    )


def similar_items(model: Any, item: Hashable, n: int = 10) -> pd.DataFrame:
    """The ``n`` items whose factors are closest in cosine similarity to those of ``item``.

    Returns a DataFrame with columns ``item``, ``similarity`` (in [-1, 1]; 0 against an item
    whose factors are all zero) and ``title`` when the model has titles. The item itself is left
    out. Raises KeyError for an item the model does not know.
    """
    _check_fitted(model)
    n = check_int(n, "n", low=1)
    index = _index_of(_item_map(model), item, model.item_ids_, "item")
    return _similar(model, model.item_factors_, model.item_factors_[index], index, n, "item")


def similar_users(model: Any, user: Hashable | FoldedUser, n: int = 10) -> pd.DataFrame:
    """The ``n`` users whose factors are closest in cosine similarity to those of ``user`` (a
    raw id or a :class:`FoldedUser`). Columns ``user`` and ``similarity``; the user itself is
    left out. Raises KeyError for a user the model does not know."""
    _check_fitted(model)
    n = check_int(n, "n", low=1)
    if isinstance(user, FoldedUser):
        _check_folded(model, user)
        return _similar(model, model.user_factors_, user.user_factors, -1, n, "user")
    index = _index_of(_user_map(model), user, model.user_ids_, "user")
    return _similar(model, model.user_factors_, model.user_factors_[index], index, n, "user")


def fold_in(model: Any, ratings: Any) -> FoldedUser:
    """Solve the bias and factors of a user who was not in training, with the items fixed.

    Minimizes the model's objective restricted to this user's ratings ``R``:
    ``sum (r - mu - b_u - b_i - p . q_i)^2 + reg * |R| * |p|^2 + reg_bias * |R| * b_u^2``
    (the per-rating penalties of training, counted once per rating), a ridge regression solved
    exactly. With ``biases="none"`` the user bias stays 0; with ``biases="fixed"`` it is the
    damped mean residual ``sum(r - mu - b_i) / (|R| + bias_damping)`` and only ``p`` is solved.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    ratings : DataFrame, Series or mapping
        The new user's ratings: a DataFrame with columns ``item`` and ``rating`` (a ``user``
        column, if present, must hold one user), a Series of ratings indexed by raw item id,
        or a mapping raw item id -> rating. Items the model does not know are left out (with a
        warning).

    Returns
    -------
    FoldedUser
        Accepted by :func:`recommend`, :func:`recommend_many` and :func:`similar_users`.
    """
    _check_fitted(model)
    item_raw, values = _fold_in_input(ratings)
    idx = _lookup(_item_map(model), item_raw, model.item_ids_)
    known = idx >= 0
    n_ignored = int((~known).sum())
    if not known.any():
        raise ValueError(
            f"none of the {len(idx)} rated items are known to the model (first: "
            f"{item_raw[0]!r}); a user with no known items can only get the fallback list: "
            f"call recommend with an unknown user id"
        )
    if n_ignored:
        shown = ", ".join(repr(x) for x in item_raw[~known][:3])
        warnings.warn(
            f"fold_in: {n_ignored} of {len(idx)} rated items are unknown to the model and were "
            f"left out ({shown}{', ...' if n_ignored > 3 else ''})",
            UserWarning,
            stacklevel=2,
        )
    idx, values = idx[known], values[known]
    if np.unique(idx).shape[0] != idx.shape[0]:
        raise ValueError(
            "ratings repeat an item; give each item once (keep the latest rating of each)"
        )
    dtype = model.item_factors_.dtype
    b_u, p_u = _solve_user(model, idx, values)
    return FoldedUser(
        user_bias=float(dtype.type(b_u)),
        user_factors=np.ascontiguousarray(p_u, dtype=dtype),
        seen_items=np.sort(idx).astype(np.int32),
        n_ignored=n_ignored,
        model=model,
    )


# --------------------------------------------------------------------------- internals

_EMPTY_I32 = np.zeros(0, dtype=np.int32)


def _check_fitted(model: Any) -> None:
    missing = [name for name in _FITTED if getattr(model, name, None) is None]
    if missing:
        from fastmf.model import NotFittedError

        raise NotFittedError(
            f"this {type(model).__name__} is not fitted (it has no {missing[0]}); call fit "
            f"before recommending"
        )


def _user_map(model: Any) -> Any:
    return _id_map(model, "user_map_", "user_ids_")


def _item_map(model: Any) -> Any:
    return _id_map(model, "item_map_", "item_ids_")


def _id_map(model: Any, map_name: str, ids_name: str) -> Any:
    """The model's IdMap, built from its raw ids when the model has none (built by hand)."""
    id_map = getattr(model, map_name, None)
    if id_map is None:
        from fastmf.ratings import IdMap

        id_map = IdMap(getattr(model, ids_name))
        with contextlib.suppress(AttributeError):
            setattr(model, map_name, id_map)
    return id_map


def _lookup(id_map: Any, values: Any, ids: np.ndarray) -> np.ndarray:
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


def _index_of(id_map: Any, raw: Any, ids: np.ndarray, what: str) -> int:
    idx = int(_lookup(id_map, [raw], ids)[0])
    if idx < 0:
        raise KeyError(f"unknown {what} {raw!r}: it was not in the model's training data")
    return idx


def _as_user_array(users: Any) -> np.ndarray:
    if isinstance(users, (str, bytes, FoldedUser)) or not hasattr(users, "__len__"):
        raise TypeError(
            f"users must be a sequence of user ids, got {type(users).__name__}; for one user "
            f"call recommend(model, user)"
        )
    if isinstance(users, np.ndarray) and users.dtype != object:
        if users.ndim != 1:
            raise ValueError(f"users must be 1-dimensional, got shape {users.shape}")
        return users
    arr = np.empty(len(users), dtype=object)
    arr[:] = list(users)
    return arr


def _candidates(model: Any, items: Any) -> np.ndarray:
    """Item indices (int64) to rank: all items, or the raw ids in ``items`` (deduplicated,
    first occurrence kept); raises naming unknown ids."""
    n_items = model.item_factors_.shape[0]
    if items is None:
        return np.arange(n_items, dtype=np.int64)
    if isinstance(items, (str, bytes)) or not hasattr(items, "__len__"):
        raise TypeError(f"items must be a sequence of raw item ids, got {type(items).__name__}")
    raw = np.empty(len(items), dtype=object)
    raw[:] = list(items)
    idx = _lookup(_item_map(model), raw, model.item_ids_)
    if (idx < 0).any():
        bad = raw[idx < 0]
        shown = ", ".join(repr(x) for x in bad[:3])
        raise ValueError(
            f"items holds {bad.shape[0]} ids unknown to the model ({shown}); pass only items of "
            f"the training data"
        )
    if idx.shape[0] == 0:
        raise ValueError("items is empty; pass at least one item id, or None for all items")
    _, first = np.unique(idx, return_index=True)
    return idx[np.sort(first)]


def _seen_csr(model: Any) -> tuple[np.ndarray, np.ndarray]:
    indptr = getattr(model, "seen_indptr_", None)
    items = getattr(model, "seen_items_", None)
    if indptr is None or items is None:
        n_users = model.user_factors_.shape[0]
        return np.zeros(n_users + 1, dtype=np.int64), _EMPTY_I32
    return (
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(items, dtype=np.int32),
    )


def _check_folded(model: Any, user: FoldedUser) -> FoldedUser:
    k = model.item_factors_.shape[1]
    if user.user_factors.shape != (k,):
        raise ValueError(
            f"the FoldedUser has {user.user_factors.shape[0]} factors but the model has {k}; "
            f"fold the user in with this model"
        )
    return user


def _topk_chunked(
    P: np.ndarray,
    Q: np.ndarray,
    item_bias: np.ndarray,
    cand: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    excl_items: np.ndarray,
    width: int,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``width`` candidate positions and partial scores ``p . q + bias`` of every row of P.

    ``cand`` holds the item indices to rank (a position is an index into it); row r excludes
    the item indices ``excl_items[start[r]:end[r]]``. Returns (positions int32, scores), both
    (len(P), width), padded with -1 and -inf. Memory: the outputs plus one tile per thread.
    """
    dtype = Q.dtype
    n_items = Q.shape[0]
    n_cand = cand.shape[0]
    all_items = n_cand == n_items and bool((cand == np.arange(n_items)).all())
    Qc = Q if all_items else np.ascontiguousarray(Q[cand])
    bias_c = np.ascontiguousarray(item_bias if all_items else item_bias[cand], dtype=dtype)
    P = np.ascontiguousarray(P, dtype=dtype)
    m = P.shape[0]
    excl_pos, start, end = _exclusion_positions(
        cand, all_items, n_items, np.asarray(start), np.asarray(end), excl_items
    )
    heap_score = np.full((m, width), -np.inf, dtype=dtype)
    heap_pos = np.full((m, width), -1, dtype=np.int32)
    cursor = start.copy()
    rows = min(_TILE_ROWS, m)
    cols = int(min(n_cand, max(_BLOCK_MIN, _TILE_BYTES // (rows * dtype.itemsize))))
    chunks = [(s, min(s + rows, m)) for s in range(0, m, rows)]

    def run(s: int, e: int, flat: np.ndarray, kernel: Any) -> None:
        for c0 in range(0, n_cand, cols):
            c1 = min(c0 + cols, n_cand)
            S = flat[: (e - s) * (c1 - c0)].reshape(e - s, c1 - c0)
            np.matmul(P[s:e], Qc[c0:c1].T, out=S)
            kernel(
                S, bias_c[c0:c1], c0, excl_pos, cursor[s:e], end[s:e], heap_score[s:e],
                heap_pos[s:e],
            )  # fmt: skip
        rk.finish_rows(heap_score[s:e], heap_pos[s:e])

    if len(chunks) == 1 or n_threads == 1 or not _HAS_THREADPOOLCTL:
        flat = np.empty(rows * cols, dtype=dtype)
        kernel = rk.topk_tile if n_threads > 1 else rk.topk_tile_serial
        with KERNEL_LOCK:  # a parallel kernel (the pool below runs serial ones)
            for s, e in chunks:
                run(s, e, flat, kernel)
        return heap_pos, heap_score

    from threadpoolctl import threadpool_limits

    next_chunk = itertools.count()  # next() on it is atomic under the GIL
    n_workers = min(n_threads, len(chunks))

    def work() -> None:
        flat = np.empty(rows * cols, dtype=dtype)
        while (c := next(next_chunk)) < len(chunks):
            run(*chunks[c], flat, rk.topk_tile_serial)

    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=n_workers) as pool,
    ):
        for f in [pool.submit(work) for _ in range(n_workers)]:
            f.result()
    return heap_pos, heap_score


_BLOCK_MIN = 256


def _exclusion_positions(
    cand: np.ndarray,
    all_items: bool,
    n_items: int,
    start: np.ndarray,
    end: np.ndarray,
    excl_items: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Excluded candidate positions per row, sorted within each row, as (positions, start, end).

    The kernels consume each row's exclusions in increasing position as tiles advance. The
    model's seen items are sorted already and kept as they are (after a check); otherwise they
    are mapped to positions, dropped when not candidates, and sorted.
    """
    start = np.ascontiguousarray(start, dtype=np.int64)
    end = np.ascontiguousarray(end, dtype=np.int64)
    excl_items = np.ascontiguousarray(excl_items, dtype=np.int32)
    if all_items and _rows_sorted(excl_items, start, end):
        return excl_items, start, end
    lengths = end - start
    owner = np.repeat(np.arange(start.shape[0], dtype=np.int64), lengths)
    flat = (
        np.concatenate([excl_items[a:b] for a, b in zip(start, end)])
        if owner.size
        else (np.zeros(0, np.int32))
    )
    if all_items:
        pos = flat.astype(np.int64)
    else:
        cand_pos = np.full(n_items, -1, dtype=np.int64)
        cand_pos[cand] = np.arange(cand.shape[0])
        pos = cand_pos[flat]
    keep = pos >= 0
    owner, pos = owner[keep], pos[keep]
    order = np.lexsort((pos, owner))
    counts = np.bincount(owner, minlength=start.shape[0])
    new_end = np.cumsum(counts).astype(np.int64)
    return pos[order].astype(np.int32), new_end - counts, new_end


def _rows_sorted(items: np.ndarray, start: np.ndarray, end: np.ndarray) -> bool:
    """Whether items[start[r]:end[r]] is non-decreasing for every row r (vectorized)."""
    live = end - start >= 2
    if not live.any():
        return True
    lo, hi = int(start[live].min()), int(end[live].max())
    span = items[lo:hi]
    drops = np.flatnonzero(span[1:] < span[:-1]) + lo + 1  # items[d] < items[d - 1]
    if drops.shape[0] == 0:
        return True
    # A drop at d is harmless unless some row holds both d - 1 and d: start < d < end.
    order = np.argsort(start[live], kind="stable")
    starts = start[live][order]
    reach = np.maximum.accumulate(end[live][order])  # farthest end among rows starting so far
    k = np.searchsorted(starts, drops, side="left")  # rows with start < d are [0, k)
    inside = (k > 0) & (reach[np.maximum(k - 1, 0)] > drops)
    return not bool(inside.any())


def _similar(
    model: Any, F: np.ndarray, query: np.ndarray, self_index: int, n: int, what: str
) -> pd.DataFrame:
    """Top-n rows of F by cosine similarity to ``query``, leaving out row ``self_index``."""
    dtype = F.dtype
    norms = np.sqrt(np.einsum("ij,ij->i", F, F, dtype=np.float64))
    q = np.asarray(query, dtype=np.float64)
    q_norm = float(np.sqrt(q @ q))
    # Zero vectors get similarity 0: their dot products are 0 and their norm is replaced by 1.
    Fs = (F / np.where(norms > 0, norms, 1.0)[:, None]).astype(dtype)
    qs = (q / (q_norm if q_norm > 0 else 1.0)).astype(dtype)
    n_rows = F.shape[0]
    width = min(n, n_rows - (1 if self_index >= 0 else 0))
    if width <= 0:
        return pd.DataFrame({what: np.empty(0, dtype=F.dtype), "similarity": np.empty(0)})
    excl = np.array([self_index] if self_index >= 0 else [], dtype=np.int32)
    with _threads(model) as n_threads:
        pos, sim = _topk_chunked(
            qs[None, :],
            Fs,
            np.zeros(n_rows, dtype=dtype),
            np.arange(n_rows, dtype=np.int64),
            np.zeros(1, np.int64),
            np.full(1, excl.shape[0], np.int64),
            excl,
            width,
            n_threads,
        )
    keep = pos[0] >= 0
    ids = model.item_ids_ if what == "item" else model.user_ids_
    data: dict[str, Any] = {
        what: ids[pos[0][keep]],
        "similarity": np.clip(sim[0][keep].astype(np.float64), -1.0, 1.0),
    }
    titles = getattr(model, "item_titles_", None)
    if what == "item" and titles is not None:
        data["title"] = _titles_of(data["item"], titles)
    return pd.DataFrame(data)


def _raw_ids(ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
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


def _titles_of(items: np.ndarray, titles: Mapping[Hashable, str]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for j, it in enumerate(items):
        key = it.item() if isinstance(it, np.generic) else it
        out[j] = titles.get(key)
    return out


def _threads(model: Any):
    """Run with the model's ``n_jobs`` Numba threads, restored after; yields that number."""
    return numba_threads(threads_for(getattr(model, "n_jobs", None)))


def _fold_in_input(ratings: Any) -> tuple[np.ndarray, np.ndarray]:
    """Raw item ids (object array) and ratings (float64) of the user to fold in."""
    if isinstance(ratings, pd.DataFrame):
        missing = [c for c in ("item", "rating") if c not in ratings.columns]
        if missing:
            raise ValueError(
                f"the ratings DataFrame has no column {missing[0]!r} (its columns: "
                f"{list(ratings.columns)}); fold_in needs columns item and rating"
            )
        if "user" in ratings.columns and ratings["user"].nunique(dropna=False) > 1:
            raise ValueError(
                f"the ratings hold {ratings['user'].nunique(dropna=False)} users; fold_in solves "
                f"one user at a time: pass the rows of one user"
            )
        items, values = ratings["item"].to_numpy(), ratings["rating"].to_numpy()
    elif isinstance(ratings, pd.Series):
        items, values = ratings.index.to_numpy(), ratings.to_numpy()
    elif isinstance(ratings, Mapping):
        items, values = list(ratings.keys()), list(ratings.values())
    else:
        raise TypeError(
            f"ratings must be a DataFrame (columns item, rating), a Series indexed by item or a "
            f"dict item -> rating, got {type(ratings).__name__}"
        )
    values = np.asarray(values)
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"ratings must be numeric, got dtype {values.dtype}")
    values = values.astype(np.float64)
    if values.shape[0] == 0:
        raise ValueError("no ratings given: fold_in needs at least one rating")
    if not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(values))
        raise ValueError(
            f"ratings has {bad.shape[0]} NaN or infinite values (first at row {bad[0]}); drop "
            f"or fill them"
        )
    item_arr = np.empty(len(items), dtype=object)
    item_arr[:] = list(items)
    return item_arr, values


def _solve_user(model: Any, idx: np.ndarray, values: np.ndarray) -> tuple[float, np.ndarray]:
    """Closed-form (b_u, p_u) for ratings ``values`` of item indices ``idx`` (float64)."""
    Q = model.item_factors_[idx].astype(np.float64)
    count = idx.shape[0]
    k = Q.shape[1]
    reg = float(getattr(model, "reg", 0.0) or 0.0)
    reg_bias = float(getattr(model, "reg_bias", 0.0) or 0.0)
    biases = getattr(model, "biases", "learned")
    y = values - float(model.global_mean_) - model.item_bias_[idx].astype(np.float64)
    if biases == "learned":
        A = np.empty((count, k + 1))
        A[:, 0] = 1.0
        A[:, 1:] = Q
        G = A.T @ A
        G[0, 0] += reg_bias * count
        G[1:, 1:] += reg * count * np.eye(k)
        x = _ridge_solve(G, A.T @ y)
        return float(x[0]), x[1:]
    if biases == "fixed":
        damping = float(getattr(model, "bias_damping", 0.0) or 0.0)
        b_u = float(y.sum() / (count + damping))
    else:
        b_u = 0.0
    G = Q.T @ Q + reg * count * np.eye(k)
    p = _ridge_solve(G, Q.T @ (y - b_u))
    return b_u, p


def _ridge_solve(G: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solution of ``G x = rhs`` for a symmetric positive semi-definite G; the minimum-norm
    least-squares solution when G is singular (reg = 0 with fewer ratings than factors)."""
    try:
        x = np.linalg.solve(G, rhs)
        if np.isfinite(x).all() and np.linalg.cond(G) < 1e12:
            return x
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(G, rhs, rcond=None)[0]
