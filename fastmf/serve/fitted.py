"""The one check that a model is fitted enough to serve (recommend, similar, fold-in, save);
it lives in ``fastmf._validation`` so that the estimator below this room shares it."""

from __future__ import annotations

from fastmf._validation import SERVING_ATTRIBUTES, check_fitted

__all__ = ["SERVING_ATTRIBUTES", "check_fitted"]
