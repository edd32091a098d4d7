"""The old home of the parameter search; it now lives in :mod:`fastmf.evaluate.tune`."""

from fastmf.evaluate.tune import SearchResult, auto, average_models, grid_search, random_search

__all__ = ["SearchResult", "auto", "average_models", "grid_search", "random_search"]
