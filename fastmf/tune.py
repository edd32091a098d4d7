"""The old home of the parameter search; it now lives in :mod:`fastmf.evaluate.tune`."""

from fastmf.evaluate.tune import SearchResult, grid_search, random_search

__all__ = ["SearchResult", "grid_search", "random_search"]
