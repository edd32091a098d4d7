"""The errors of the rating store, each a ValueError naming the store and what is wrong."""

from __future__ import annotations


class StoreError(ValueError):
    """A rating store that cannot be built or opened."""


class StoreCorruptError(StoreError):
    """A store whose manifest or files do not match: damaged, changed after the build, or
    never finished."""


class StoreVersionError(StoreError):
    """A store written in a format version this fastmf does not read."""


class StoreBuildError(StoreError):
    """A build that failed (the disk filled up, a write failed); nothing is left at the path."""
