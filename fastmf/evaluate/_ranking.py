"""Per-user hit counts and DCG of top-k lists against relevant items, and their means.

The relevant items of each user are a CSR (``indptr``, sorted item codes); the lists are a
(users × width) array of item codes, -1 for padding or items that cannot be relevant. The counts
come from a Numba kernel, parallel over users.
"""

from __future__ import annotations

import math

import numpy as np

from fastmf._kernels import ranking as rk
from fastmf._threads import KERNEL_LOCK

RANKING_METRICS = ("precision", "recall", "ndcg", "hit_rate")


def csr(owner: np.ndarray, codes: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
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


def counts(
    rec: np.ndarray, indptr: np.ndarray, rel_items: np.ndarray, n_relevant: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: hits in the top k, their DCG, and the ideal DCG of ``min(k, n_relevant)``."""
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


def per_user(
    hits: np.ndarray, dcg: np.ndarray, idcg: np.ndarray, n_relevant: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """The four metrics of each user (recall and NDCG are NaN for a user with nothing relevant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": hits / k,
            "recall": np.where(n_relevant > 0, hits / np.maximum(n_relevant, 1), np.nan),
            "ndcg": np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan),
            "hit_rate": (hits > 0).astype(np.float64),
        }


def summarize(
    hits: np.ndarray, dcg: np.ndarray, idcg: np.ndarray, n_relevant: np.ndarray, k: int
) -> dict[str, float]:
    """The four metrics averaged over the users with a relevant item (NaN when none has)."""
    users = n_relevant > 0
    per = per_user(hits, dcg, idcg, n_relevant, k)
    if not users.any():
        return {name: math.nan for name in RANKING_METRICS}
    return {name: float(np.mean(per[name][users])) for name in RANKING_METRICS}
