"""What serving returns: a folded-in user, and the top-n lists of many users."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastmf.serve.lookup import item_map, lookup, titles_of

__all__ = ["FoldedUser", "Recommendations", "check_folded"]

_REPR_ROWS = 3
_REPR_ITEMS = 5


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
        idx = lookup(item_map(model), items, model.item_ids_)
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

    def __repr__(self) -> str:
        """The shape, the number of fallback users and the first items of the first rows."""
        n_users, width = self.item_indices.shape
        lines = [
            f"Recommendations({n_users} users, top {width}, "
            f"{int(np.count_nonzero(self.fallback))} fallback)"
        ]
        for r in range(min(_REPR_ROWS, n_users)):
            count = int(self.counts[r])
            shown = ", ".join(repr(x) for x in self.items[r, : min(count, _REPR_ITEMS)].tolist())
            more = ", ..." if count > _REPR_ITEMS else ""
            lines.append(f"  {_user_label(self.users[r])}: [{shown}{more}]")
        if n_users > _REPR_ROWS:
            lines.append(f"  ... and {n_users - _REPR_ROWS} more users")
        return "\n".join(lines)

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
            data["title"] = titles_of(data["item"], self.titles)
        data["fallback"] = self.fallback[rows]
        return pd.DataFrame(data)


def _user_label(user: Any) -> str:
    if isinstance(user, FoldedUser):
        return "FoldedUser"
    return repr(user.item() if isinstance(user, np.generic) else user)


def check_folded(model: Any, user: FoldedUser) -> FoldedUser:
    """The FoldedUser, refused unless its factors fit the model's."""
    k = model.item_factors_.shape[1]
    if user.user_factors.shape != (k,):
        raise ValueError(
            f"the FoldedUser has {user.user_factors.shape[0]} factors but the model has {k}; "
            f"fold the user in with this model"
        )
    return user
