"""Serving a fitted model: top-n recommendations, similar items and users, and fold-in.

The code lives in :mod:`fastmf.serve`; this module keeps the import path ``fastmf.recommend``.

Names with a leading underscore (and ``coerce_id``) are still imported from here by
``fastmf.metrics`` and ``fastmf.cli``; they move to their ``fastmf.serve`` homes.
"""

from __future__ import annotations

from fastmf.serve.fitted import check_fitted as _check_fitted  # noqa: F401
from fastmf.serve.fold_in import fold_in
from fastmf.serve.lookup import coerce_id  # noqa: F401
from fastmf.serve.lookup import item_map as _item_map  # noqa: F401
from fastmf.serve.lookup import lookup as _lookup  # noqa: F401
from fastmf.serve.lookup import seen_csr as _seen_csr  # noqa: F401
from fastmf.serve.lookup import user_map as _user_map  # noqa: F401
from fastmf.serve.recommend import recommend, recommend_many
from fastmf.serve.results import FoldedUser, Recommendations
from fastmf.serve.similar import similar_items, similar_users
from fastmf.serve.topk import serving_threads as _threads  # noqa: F401
from fastmf.serve.topk import topk_chunked as _topk_chunked  # noqa: F401

__all__ = [
    "FoldedUser",
    "Recommendations",
    "fold_in",
    "recommend",
    "recommend_many",
    "similar_items",
    "similar_users",
]
