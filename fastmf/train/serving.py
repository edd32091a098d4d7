"""The serving methods of the estimator: raw ids of its rows, recommendations, similar items and
users, fold-in and saving, each a thin call of ``fastmf.serve`` (through ``fastmf._services``:
serving sits above training)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fastmf._services import service
from fastmf.errors import NotFittedError
from fastmf.train.lock import lock_of

if TYPE_CHECKING:
    from fastmf.data.ids import IdMap


class ServingMethods:
    """Mixed into ``MatrixFactorization``: what a fitted model serves."""

    if TYPE_CHECKING:
        user_map_: IdMap
        item_map_: IdMap

    @property
    def user_ids_(self) -> np.ndarray:
        """Raw id of each row of ``user_factors_``."""
        if "user_map_" not in self.__dict__:
            raise NotFittedError(
                "this MatrixFactorization is not fitted yet; call fit(ratings) before using it"
            )
        return self.user_map_.ids

    @property
    def item_ids_(self) -> np.ndarray:
        """Raw id of each row of ``item_factors_``."""
        if "item_map_" not in self.__dict__:
            raise NotFittedError(
                "this MatrixFactorization is not fitted yet; call fit(ratings) before using it"
            )
        return self.item_map_.ids

    # serving: thin delegations to fastmf.serve (provided through fastmf._services)
    def recommend(
        self, user: Any, n: int = 10, exclude_seen: bool = True, items: Any = None
    ) -> pd.DataFrame:
        """Top-``n`` items for one user (a raw id or a ``FoldedUser``); see
        ``fastmf.recommend.recommend``."""
        with lock_of(self).reading():
            return service("recommend")(self, user, n=n, exclude_seen=exclude_seen, items=items)

    def recommend_many(self, users: Any, n: int = 10, exclude_seen: bool = True, items: Any = None):
        """Top-``n`` items for many users at once; see ``fastmf.recommend.recommend_many``."""
        with lock_of(self).reading():
            return service("recommend_many")(
                self, users, n=n, exclude_seen=exclude_seen, items=items
            )

    def similar_items(self, item: Hashable, n: int = 10) -> pd.DataFrame:
        """Items nearest by cosine of factors; see ``fastmf.recommend.similar_items``."""
        with lock_of(self).reading():
            return service("similar_items")(self, item, n=n)

    def similar_users(self, user: Any, n: int = 10) -> pd.DataFrame:
        """Users nearest by cosine of factors; see ``fastmf.recommend.similar_users``."""
        with lock_of(self).reading():
            return service("similar_users")(self, user, n=n)

    def fold_in(self, ratings: Any):
        """Factors and bias of a user unseen in training; see ``fastmf.recommend.fold_in``."""
        with lock_of(self).reading():
            return service("fold_in")(self, ratings)

    def save(self, path: Any) -> None:
        """Write the model to one file, atomically; see ``fastmf.serialize.save``."""
        with lock_of(self).reading():
            service("save")(self, path)
