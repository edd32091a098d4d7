"""Items or users nearest to one item or user, by cosine similarity of their factors."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from fastmf._validation import check_int
from fastmf.serve.fitted import check_fitted
from fastmf.serve.lookup import index_of, item_map, titles_of, user_map
from fastmf.serve.results import FoldedUser, check_folded
from fastmf.serve.topk import serving_threads, topk_chunked

__all__ = ["similar_items", "similar_users"]


def similar_items(model: Any, item: Hashable, n: int = 10) -> pd.DataFrame:
    """The ``n`` items whose factors are closest in cosine similarity to those of ``item``.

    Returns a DataFrame with columns ``item``, ``similarity`` (in [-1, 1]; 0 against an item
    whose factors are all zero) and ``title`` when the model has titles. The item itself is left
    out. Raises KeyError for an item the model does not know.
    """
    check_fitted(model)
    n = check_int(n, "n", low=1)
    index = index_of(item_map(model), item, model.item_ids_, "item")
    return _similar(model, model.item_factors_, model.item_factors_[index], index, n, "item")


def similar_users(model: Any, user: Hashable | FoldedUser, n: int = 10) -> pd.DataFrame:
    """The ``n`` users whose factors are closest in cosine similarity to those of ``user`` (a
    raw id or a :class:`FoldedUser`). Columns ``user`` and ``similarity``; the user itself is
    left out. Raises KeyError for a user the model does not know."""
    check_fitted(model)
    n = check_int(n, "n", low=1)
    if isinstance(user, FoldedUser):
        check_folded(model, user)
        return _similar(model, model.user_factors_, user.user_factors, -1, n, "user")
    index = index_of(user_map(model), user, model.user_ids_, "user")
    return _similar(model, model.user_factors_, model.user_factors_[index], index, n, "user")


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
    with serving_threads(model) as n_threads:
        pos, sim = topk_chunked(
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
        data["title"] = titles_of(data["item"], titles)
    return pd.DataFrame(data)
