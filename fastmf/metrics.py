"""Accuracy of predicted ratings (RMSE, MAE) and of top-k lists (precision, recall, NDCG, hit rate).

Ranking metrics use binary relevance: an item is relevant to a user when the user's test rating
is at or above a threshold (4.0 by default). Each metric is the mean over the users that have at
least one relevant item:

- ``precision@k = hits / k`` (a list shorter than k counts its missing entries as misses),
- ``recall@k = hits / n_relevant``,
- ``ndcg@k = DCG / IDCG`` with ``DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1)`` and
  IDCG the DCG of ``min(k, n_relevant)`` hits at the top,
- ``hit_rate@k`` the fraction of users with at least one hit.

The per-user counts are computed by a Numba kernel in parallel over users.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fastmf import _rank_kernels as rk
from fastmf._threads import KERNEL_LOCK
from fastmf._validation import check_float, check_int

__all__ = [
    "evaluate",
    "hit_rate",
    "mae",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "rmse",
]

RANKING_METRICS = ("precision", "recall", "ndcg", "hit_rate")


# --------------------------------------------------------------------------- rating errors


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error of predicted ratings ``y_pred`` against ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error of predicted ratings ``y_pred`` against ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _numeric(y_true, "y_true")
    p = _numeric(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true has {t.shape[0]} values but y_pred has {p.shape[0]}; pass one prediction "
            f"per rating"
        )
    if t.shape[0] == 0:
        raise ValueError("y_true is empty; the error of no ratings is undefined")
    return t, p


def _numeric(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim <= 1 else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(
            f"{name} has {bad.shape[0]} NaN or infinite values (first at row {bad[0]}); drop or "
            f"fill them"
        )
    return arr


# --------------------------------------------------------------------------- ranking, given lists


def precision_at_k(
    recommended: Sequence[Sequence[Hashable]] | np.ndarray,
    relevant: Sequence[Collection[Hashable]],
    k: int = 10,
) -> float:
    """Mean precision at k of recommended lists.

    Parameters
    ----------
    recommended : 2-d array or sequence of sequences, one list per user
        Recommended item ids, best first (lists may be shorter than k; None pads).
    relevant : sequence of collections, one per user
        The relevant item ids of each user.
    k : int, default 10

    Returns
    -------
    float
        Mean of ``hits / k`` over users with at least one relevant item (NaN when none has).
    """
    return _list_metrics(recommended, relevant, k)["precision"]


def recall_at_k(
    recommended: Sequence[Sequence[Hashable]] | np.ndarray,
    relevant: Sequence[Collection[Hashable]],
    k: int = 10,
) -> float:
    """Mean recall at k (``hits / n_relevant``) over users with a relevant item; see
    :func:`precision_at_k` for the arguments."""
    return _list_metrics(recommended, relevant, k)["recall"]


def ndcg_at_k(
    recommended: Sequence[Sequence[Hashable]] | np.ndarray,
    relevant: Sequence[Collection[Hashable]],
    k: int = 10,
) -> float:
    """Mean normalized DCG at k with binary gains over users with a relevant item; see
    :func:`precision_at_k` for the arguments."""
    return _list_metrics(recommended, relevant, k)["ndcg"]


def hit_rate(
    recommended: Sequence[Sequence[Hashable]] | np.ndarray,
    relevant: Sequence[Collection[Hashable]],
    k: int = 10,
) -> float:
    """Fraction of users (with a relevant item) who have at least one relevant item in their top
    k; see :func:`precision_at_k` for the arguments."""
    return _list_metrics(recommended, relevant, k)["hit_rate"]


def _list_metrics(recommended: Any, relevant: Any, k: int) -> dict[str, float]:
    """All four ranking metrics of given lists, through the parallel kernel."""
    k = check_int(k, "k", low=1)
    rec_lists = _as_lists(recommended, "recommended")
    rel_lists = _as_lists(relevant, "relevant")
    if len(rec_lists) != len(rel_lists):
        raise ValueError(
            f"recommended has {len(rec_lists)} lists but relevant has {len(rel_lists)}; give one "
            f"of each per user, in the same order"
        )
    m = len(rel_lists)
    # Codes: relevant ids get 0..V-1; anything else (including padding) gets -1.
    rel_len = np.array([len(r) for r in rel_lists], dtype=np.int64)
    flat_rel = np.empty(int(rel_len.sum()), dtype=object)
    flat_rel[:] = [x for r in rel_lists for x in r]
    codes, vocab = pd.factorize(pd.Series(flat_rel, dtype=object), sort=False)
    owner = np.repeat(np.arange(m, dtype=np.int64), rel_len)
    indptr, rel_items = _csr(owner, codes.astype(np.int64), m)

    width = max([k] + [len(r) for r in rec_lists]) if m else k
    rec = np.full((m, width), -1, dtype=np.int64)
    index = pd.Index(vocab, dtype=object)
    for u, r in enumerate(rec_lists):
        if len(r):
            items = np.empty(len(r), dtype=object)
            items[:] = list(r)
            rec[u, : len(r)] = index.get_indexer(items)
    n_relevant = np.diff(indptr)
    return _summarize(*_counts(rec, indptr, rel_items, n_relevant, k), n_relevant, k)


def _as_lists(values: Any, name: str) -> list[Sequence[Any]]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence with one list of item ids per user")
    if isinstance(values, np.ndarray):
        if values.ndim != 2:
            raise ValueError(
                f"{name} must be 2-dimensional (users x items) when an array, got shape "
                f"{values.shape}"
            )
        return [row for row in values]
    out = []
    for j, v in enumerate(values):
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
            raise TypeError(f"{name}[{j}] must be a collection of item ids, got {type(v).__name__}")
        out.append(list(v))
    return out


def _csr(owner: np.ndarray, codes: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, items) of non-negative codes per owner, sorted and deduplicated per row."""
    keep = codes >= 0
    owner, codes = owner[keep], codes[keep]
    order = np.lexsort((codes, owner))
    owner, codes = owner[order], codes[order]
    if codes.shape[0]:
        first = np.ones(codes.shape[0], dtype=np.bool_)
        first[1:] = (owner[1:] != owner[:-1]) | (codes[1:] != codes[:-1])
        owner, codes = owner[first], codes[first]
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=m), out=indptr[1:])
    return indptr, np.ascontiguousarray(codes, dtype=np.int64)


def _counts(
    rec: np.ndarray, indptr: np.ndarray, rel_items: np.ndarray, n_relevant: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = rec.shape[0]
    hits = np.zeros(m, dtype=np.int64)
    dcg = np.zeros(m, dtype=np.float64)
    idcg = np.zeros(m, dtype=np.float64)
    if m:
        with KERNEL_LOCK:
            rk.ranking_counts(
                np.ascontiguousarray(rec, dtype=np.int64),
                indptr,
                rel_items,
                np.ascontiguousarray(n_relevant, dtype=np.int64),
                k,
                hits,
                dcg,
                idcg,
            )
    return hits, dcg, idcg


def _per_user(
    hits: np.ndarray, dcg: np.ndarray, idcg: np.ndarray, n_relevant: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": hits / k,
            "recall": np.where(n_relevant > 0, hits / np.maximum(n_relevant, 1), np.nan),
            "ndcg": np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan),
            "hit_rate": (hits > 0).astype(np.float64),
        }


def _summarize(
    hits: np.ndarray, dcg: np.ndarray, idcg: np.ndarray, n_relevant: np.ndarray, k: int
) -> dict[str, float]:
    users = n_relevant > 0
    per = _per_user(hits, dcg, idcg, n_relevant, k)
    if not users.any():
        return {name: math.nan for name in RANKING_METRICS}
    return {name: float(np.mean(per[name][users])) for name in RANKING_METRICS}


# --------------------------------------------------------------------------- model-level


def ranking_metrics(
    model: Any,
    test: pd.DataFrame,
    k: int = 10,
    threshold: float = 4.0,
    train: pd.DataFrame | None = None,
    per_user: bool = False,
) -> dict[str, float] | pd.DataFrame:
    """Precision, recall, NDCG at k and hit rate of a model's top-k lists on test ratings.

    Every test user with at least one relevant test rating (``rating >= threshold``) gets the
    model's top k among all items except their training items; users unknown to the model are
    skipped (counted in ``n_users_skipped``). Relevant test items the model does not know count
    in ``n_relevant`` but can never be hit.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    test : DataFrame
        Columns ``user``, ``item``, ``rating`` (raw ids).
    k : int, default 10
    threshold : float, default 4.0
        Lowest rating that counts as relevant.
    train : DataFrame, optional
        Ratings whose items are excluded per user (columns ``user``, ``item``). Default: the
        model's own training items (``seen_indptr_``, ``seen_items_``).
    per_user : bool, default False
        Return one row per evaluated user instead of the means.

    Returns
    -------
    dict or DataFrame
        ``precision``, ``recall``, ``ndcg``, ``hit_rate`` (means over evaluated users), ``k``,
        ``threshold``, ``n_users`` and ``n_users_skipped``; with ``per_user=True`` a DataFrame
        with columns user, n_relevant, hits and the four metrics.
    """
    from fastmf import recommend as rc

    rc._check_fitted(model)
    k = check_int(k, "k", low=1)
    threshold = check_float(threshold, "threshold", low=-math.inf)
    users_raw, items_raw, values = _test_columns(test, "test")
    rel = values >= threshold
    u_idx = rc._lookup(rc._user_map(model), users_raw[rel], model.user_ids_)
    i_idx = rc._lookup(rc._item_map(model), items_raw[rel], model.item_ids_)
    rel_users_raw = users_raw[rel]

    known_user = u_idx >= 0
    skipped = pd.unique(pd.Series(rel_users_raw[~known_user], dtype=object)).shape[0]
    eval_users, inverse = np.unique(u_idx[known_user], return_inverse=True)
    m = eval_users.shape[0]
    owner = inverse.astype(np.int64)
    item_codes = i_idx[known_user]
    # n_relevant counts every distinct relevant item, known to the model or not.
    pair_keys = pd.DataFrame({"o": owner, "i": pd.Series(items_raw[rel][known_user], dtype=object)})
    n_relevant = np.bincount(
        pair_keys.drop_duplicates()["o"].to_numpy(dtype=np.int64), minlength=m
    ).astype(np.int64)
    indptr, rel_items = _csr(owner, item_codes, m)

    start, end, excl = _exclusions(model, eval_users, train)
    width = min(k, model.item_factors_.shape[0])
    rec = np.full((m, k), -1, dtype=np.int64)
    if m:
        with rc._threads(model) as n_threads:
            pos, _ = rc._topk_chunked(
                model.user_factors_[eval_users], model.item_factors_, model.item_bias_,
                np.arange(model.item_factors_.shape[0], dtype=np.int64), start, end, excl, width,
                n_threads,
            )  # fmt: skip
        rec[:, :width] = pos  # candidate positions are item indices here (all items ranked)
    hits, dcg, idcg = _counts(rec, indptr, rel_items, n_relevant, k)
    if per_user:
        per = _per_user(hits, dcg, idcg, n_relevant, k)
        return pd.DataFrame(
            {
                "user": model.user_ids_[eval_users],
                "n_relevant": n_relevant,
                "hits": hits,
                **per,
            }
        )
    out: dict[str, Any] = _summarize(hits, dcg, idcg, n_relevant, k)
    out.update(k=k, threshold=threshold, n_users=int(m), n_users_skipped=int(skipped))
    return out


def evaluate(
    model: Any,
    test: pd.DataFrame,
    k: int = 10,
    threshold: float = 4.0,
    train: pd.DataFrame | None = None,
) -> dict[str, float]:
    """RMSE and MAE of the model's (clipped) predictions on ``test``, and its ranking metrics.

    Returns a dict with ``rmse``, ``mae``, ``n_ratings`` and the keys of
    :func:`ranking_metrics`.
    """
    users_raw, items_raw, values = _test_columns(test, "test")
    pred = model.predict(pd.DataFrame({"user": users_raw, "item": items_raw}))
    out: dict[str, Any] = {
        "rmse": rmse(values, pred),
        "mae": mae(values, pred),
        "n_ratings": int(values.shape[0]),
    }
    out.update(ranking_metrics(model, test, k=k, threshold=threshold, train=train))
    return out


def _test_columns(test: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(test, pd.DataFrame):
        if hasattr(test, "to_dataframe"):
            test = test.to_dataframe()
        else:
            raise TypeError(
                f"{name} must be a ratings DataFrame (columns user, item, rating), got "
                f"{type(test).__name__}"
            )
    missing = [c for c in ("user", "item", "rating") if c not in test.columns]
    if missing:
        raise ValueError(
            f"{name} has no column {missing[0]!r} (its columns: {list(test.columns)}); it needs "
            f"user, item and rating"
        )
    if len(test) == 0:
        raise ValueError(f"{name} is empty; pass at least one rating")
    values = _numeric(test["rating"].to_numpy(), f"{name} rating")
    return test["user"].to_numpy(), test["item"].to_numpy(), values


def _exclusions(
    model: Any, users: np.ndarray, train: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per evaluated user (model row), the item indices to exclude, as (start, end, items)."""
    from fastmf import recommend as rc

    if train is None:
        indptr, items = rc._seen_csr(model)
        return indptr[users], indptr[users + 1], items
    if not isinstance(train, pd.DataFrame) or not {"user", "item"} <= set(train.columns):
        raise TypeError("train must be a DataFrame with columns user and item, or None")
    row_of = np.full(model.user_factors_.shape[0], -1, dtype=np.int64)
    row_of[users] = np.arange(users.shape[0])
    tu = rc._lookup(rc._user_map(model), train["user"].to_numpy(), model.user_ids_)
    ti = rc._lookup(rc._item_map(model), train["item"].to_numpy(), model.item_ids_)
    ok = (tu >= 0) & (ti >= 0)
    owner = row_of[tu[ok]]
    keep = owner >= 0
    indptr, items = _csr(owner[keep], ti[ok][keep], users.shape[0])
    return indptr[:-1].copy(), indptr[1:].copy(), items.astype(np.int32)
