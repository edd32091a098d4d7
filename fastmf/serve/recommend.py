"""Top-n recommendations for one user or many, best first.

Scores are the model's predicted ratings ``mu + b_u + b_i + p_u . q_i`` (not clipped), ranked
by :func:`fastmf.serve.topk.topk_chunked` in bounded memory.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fastmf._validation import check_int
from fastmf.serve.fitted import check_fitted
from fastmf.serve.lookup import EMPTY_I32, item_map, lookup, raw_ids, seen_csr, user_map
from fastmf.serve.results import FoldedUser, Recommendations, check_folded
from fastmf.serve.topk import serving_threads, topk_chunked

__all__ = ["recommend", "recommend_many"]


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
    check_fitted(model)
    n = check_int(n, "n", low=1)
    users_arr = _as_user_array(users)
    cand = _candidates(model, items)
    width = min(n, cand.shape[0])
    rows = _UserRows.of(model, users_arr)
    start, end, seen_items = _exclusions(model, rows, exclude_seen)
    pos, part = _rank(model, rows, cand, start, end, seen_items, width)
    item_idx = np.where(pos >= 0, cand[np.maximum(pos, 0)], -1).astype(np.int32)
    valid = item_idx >= 0
    dtype = model.item_factors_.dtype
    scores = (part + (model.global_mean_ + rows.bu)[:, None]).astype(dtype, copy=False)
    scores[~valid] = np.nan
    return Recommendations(
        users=users_arr,
        items=raw_ids(model.item_ids_, item_idx),
        scores=scores,
        counts=valid.sum(axis=1).astype(np.int64),
        fallback=rows.fallback,
        item_indices=item_idx,
        titles=getattr(model, "item_titles_", None),
    )


class _UserRows:
    """The users asked for, as model rows: factors ``P`` and biases ``bu`` (zero for unknown
    users), the model row ``idx`` (-1 unless known), which are folded and which fall back."""

    def __init__(self, idx: np.ndarray, folded: np.ndarray, P: np.ndarray, bu: np.ndarray,
                 folded_seen: list[np.ndarray]):  # fmt: skip
        self.idx = idx
        self.folded = folded
        self.known = idx >= 0
        self.fallback = ~folded & (idx < 0)
        self.P = P
        self.bu = bu
        self.folded_seen = folded_seen  # seen items of each folded user, in order

    @classmethod
    def of(cls, model: Any, users_arr: np.ndarray) -> _UserRows:
        m = users_arr.shape[0]
        folded = np.zeros(m, dtype=np.bool_)
        if users_arr.dtype == object:
            folded[:] = [isinstance(u, FoldedUser) for u in users_arr]
        idx = np.full(m, -1, dtype=np.int64)
        plain = ~folded
        if plain.any():
            idx[plain] = lookup(user_map(model), users_arr[plain], model.user_ids_)
        dtype = model.item_factors_.dtype
        P = np.zeros((m, model.item_factors_.shape[1]), dtype=dtype)
        bu = np.zeros(m, dtype=dtype)
        known = idx >= 0
        P[known] = model.user_factors_[idx[known]]
        bu[known] = model.user_bias_[idx[known]]
        folded_seen = []
        for r in np.flatnonzero(folded):
            fu = check_folded(model, users_arr[r])
            P[r] = fu.user_factors
            bu[r] = fu.user_bias
            folded_seen.append(fu.seen_items)
        return cls(idx, folded, P, bu, folded_seen)


def _exclusions(
    model: Any, rows: _UserRows, exclude_seen: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's excluded item indices ``items[start[r]:end[r]]``, as (start, end, items)."""
    m = rows.idx.shape[0]
    start = np.zeros(m, dtype=np.int64)
    end = np.zeros(m, dtype=np.int64)
    seen_ptr, seen_items = seen_csr(model)
    if not exclude_seen:
        return start, end, seen_items
    known, idx = rows.known, rows.idx
    start[known] = seen_ptr[idx[known]]
    end[known] = seen_ptr[idx[known] + 1]
    if rows.folded.any():
        # Folded users' seen items go after the training CSR, in one extra array.
        extra = np.concatenate(rows.folded_seen)
        offsets = np.cumsum([0] + [s.shape[0] for s in rows.folded_seen])
        start[rows.folded] = seen_items.shape[0] + offsets[:-1]
        end[rows.folded] = seen_items.shape[0] + offsets[1:]
        seen_items = np.concatenate([seen_items, extra.astype(np.int32)])
    return start, end, seen_items


def _rank(
    model: Any,
    rows: _UserRows,
    cand: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    seen_items: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``width`` candidate positions and partial scores ``p . q + b_i`` of every row; the
    fallback rows share one list ranked by ``b_i`` alone."""
    m = rows.idx.shape[0]
    dtype = model.item_factors_.dtype
    k = model.item_factors_.shape[1]
    Q, bi = model.item_factors_, model.item_bias_
    pos = np.full((m, width), -1, dtype=np.int32)
    part = np.full((m, width), -np.inf, dtype=dtype)
    scored = np.flatnonzero(~rows.fallback)
    with serving_threads(model) as n_threads:
        if scored.shape[0]:
            pos[scored], part[scored] = topk_chunked(
                rows.P[scored], Q, bi, cand, start[scored], end[scored], seen_items, width,
                n_threads,
            )  # fmt: skip
        if rows.fallback.any():
            zero = np.zeros(1, np.int64)
            f_pos, f_part = topk_chunked(
                np.zeros((1, k), dtype=dtype), Q, bi, cand, zero, zero, EMPTY_I32, width
            )
            pos[rows.fallback] = f_pos[0]
            part[rows.fallback] = f_part[0]
    return pos, part


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
    idx = lookup(item_map(model), raw, model.item_ids_)
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
