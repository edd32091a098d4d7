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

import fastmf.evaluate._ranking as ranking
from fastmf._stats import as_finite_vector, mae, rmse
from fastmf._validation import check_float, check_int
from fastmf.data.store import RatingStore
from fastmf.evaluate._store import evaluate_store
from fastmf.serve import lookup as lk
from fastmf.serve import topk
from fastmf.serve.fitted import check_fitted

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
    indptr, rel_items = ranking.csr(owner, codes.astype(np.int64), m)

    width = max([k] + [len(r) for r in rec_lists]) if m else k
    rec = np.full((m, width), -1, dtype=np.int64)
    index = pd.Index(vocab, dtype=object)
    for u, r in enumerate(rec_lists):
        if len(r):
            items = np.empty(len(r), dtype=object)
            items[:] = list(r)
            rec[u, : len(r)] = index.get_indexer(pd.Index(items, dtype=object))
    n_relevant = np.diff(indptr)
    return ranking.summarize(*ranking.counts(rec, indptr, rel_items, n_relevant, k), n_relevant, k)


def _as_lists(values: Any, name: str) -> list[Sequence[Any]]:
    """One list of item ids per user, from a 2-d array or a sequence of collections."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence with one list of item ids per user")
    if isinstance(values, np.ndarray):
        if values.ndim != 2:
            raise ValueError(
                f"{name} must be 2-dimensional (users x items) when an array, got shape "
                f"{values.shape}"
            )
        return [row for row in values]
    out: list[Sequence[Any]] = []
    for j, v in enumerate(values):
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
            raise TypeError(f"{name}[{j}] must be a collection of item ids, got {type(v).__name__}")
        out.append(list(v))
    return out


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
    check_fitted(model)
    k = check_int(k, "k", low=1)
    threshold = check_float(threshold, "threshold", low=-math.inf)
    users_raw, items_raw, values = _test_columns(test, "test")
    rel = values >= threshold
    eval_users, n_relevant, indptr, rel_items, skipped = _relevant_items(
        model, users_raw[rel], items_raw[rel]
    )
    rec = _top_k(model, eval_users, train, k)
    hits, dcg, idcg = ranking.counts(rec, indptr, rel_items, n_relevant, k)
    if per_user:
        per = ranking.per_user(hits, dcg, idcg, n_relevant, k)
        return pd.DataFrame(
            {
                "user": model.user_ids_[eval_users],
                "n_relevant": n_relevant,
                "hits": hits,
                **per,
            }
        )
    out: dict[str, Any] = ranking.summarize(hits, dcg, idcg, n_relevant, k)
    out.update(k=k, threshold=threshold, n_users=int(eval_users.shape[0]), n_users_skipped=skipped)
    return out


def _relevant_items(
    model: Any, users_raw: np.ndarray, items_raw: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The relevant test ratings per user the model knows.

    Returns the evaluated users (model rows, sorted), each one's number of distinct relevant
    items (known to the model or not), the CSR (indptr, item indices) of the relevant items the
    model knows, and the number of distinct users skipped as unknown.
    """
    u_idx = lk.user_rows(model, users_raw)
    i_idx = lk.item_rows(model, items_raw)
    known_user = u_idx >= 0
    skipped = pd.unique(pd.Series(users_raw[~known_user], dtype=object)).shape[0]
    eval_users, inverse = np.unique(u_idx[known_user], return_inverse=True)
    m = eval_users.shape[0]
    owner = inverse.astype(np.int64)
    # n_relevant counts every distinct relevant item, known to the model or not.
    pair_keys = pd.DataFrame({"o": owner, "i": pd.Series(items_raw[known_user], dtype=object)})
    n_relevant = np.bincount(
        pair_keys.drop_duplicates()["o"].to_numpy(dtype=np.int64), minlength=m
    ).astype(np.int64)
    indptr, rel_items = ranking.csr(owner, i_idx[known_user], m)
    return eval_users, n_relevant, indptr, rel_items, int(skipped)


def _top_k(model: Any, eval_users: np.ndarray, train: pd.DataFrame | None, k: int) -> np.ndarray:
    """The model's top k item indices of each user among all items but the excluded ones, as
    a (users × k) array padded with -1 when there are fewer than k items."""
    m = eval_users.shape[0]
    start, end, excl = _exclusions(model, eval_users, train)
    width = min(k, model.item_factors_.shape[0])
    rec = np.full((m, k), -1, dtype=np.int64)
    if m:
        with topk.serving_threads(model) as n_threads:
            pos, _ = topk.topk_chunked(
                model.user_factors_[eval_users], model.item_factors_, model.item_bias_,
                np.arange(model.item_factors_.shape[0], dtype=np.int64), start, end, excl, width,
                n_threads,
            )  # fmt: skip
        rec[:, :width] = pos  # candidate positions are item indices here (all items ranked)
    return rec


def evaluate(
    model: Any,
    test: pd.DataFrame,
    k: int = 10,
    threshold: float = 4.0,
    train: pd.DataFrame | None = None,
) -> dict[str, float]:
    """RMSE and MAE of the model's (clipped) predictions on ``test``, and its ranking metrics.

    Returns a dict with ``rmse``, ``mae``, ``n_ratings`` and the keys of
    :func:`ranking_metrics`. ``test`` may be a RatingStore: it is read a user stratum at a time.
    """
    if isinstance(test, RatingStore):
        return evaluate_store(model, test, k, threshold, train, ranking_metrics)
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
    """Raw users, raw items and float64 ratings of a test DataFrame (or Ratings), checked."""
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
    values = as_finite_vector(test["rating"].to_numpy(), f"{name} rating")
    return test["user"].to_numpy(), test["item"].to_numpy(), values


def _exclusions(
    model: Any, users: np.ndarray, train: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per evaluated user (model row), the item indices to exclude, as (start, end, items)."""
    if train is None:
        indptr, items = lk.seen_csr(model)
        return indptr[users], indptr[users + 1], items
    if not isinstance(train, pd.DataFrame) or not {"user", "item"} <= set(train.columns):
        raise TypeError("train must be a DataFrame with columns user and item, or None")
    row_of = np.full(model.user_factors_.shape[0], -1, dtype=np.int64)
    row_of[users] = np.arange(users.shape[0])
    tu = lk.user_rows(model, train["user"].to_numpy())
    ti = lk.item_rows(model, train["item"].to_numpy())
    ok = (tu >= 0) & (ti >= 0)
    owner = row_of[tu[ok]]
    keep = owner >= 0
    indptr, items = ranking.csr(owner[keep], ti[ok][keep], users.shape[0])
    return indptr[:-1].copy(), indptr[1:].copy(), items.astype(np.int32)
