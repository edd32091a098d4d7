"""The one check that a model is fitted enough to serve (recommend, similar, fold-in, save)."""

from __future__ import annotations

from typing import Any

from fastmf.errors import NotFittedError

__all__ = ["SERVING_ATTRIBUTES", "check_fitted"]

SERVING_ATTRIBUTES = (
    "global_mean_",
    "user_bias_",
    "item_bias_",
    "user_factors_",
    "item_factors_",
    "user_ids_",
    "item_ids_",
)
"""The fitted attributes serving reads."""


def check_fitted(model: Any) -> None:
    """Raise :class:`~fastmf.errors.NotFittedError` unless ``model`` has every attribute of
    :data:`SERVING_ATTRIBUTES` (an attribute that raises AttributeError counts as missing)."""
    if any(getattr(model, name, None) is None for name in SERVING_ATTRIBUTES):
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet; call fit(ratings) before using it"
        )
