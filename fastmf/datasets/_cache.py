"""Old home of the parsed cache: it lives in ``fastmf.data.datasets._cache`` now."""

from fastmf.data.datasets._cache import (
    CACHE_VERSION,
    CHECKSUM,
    COLUMNS,
    DamagedCache,
    cache_dir,
    checksum,
    default_data_home,
    fingerprint,
    get_data_home,
    load,
    store,
)

__all__ = [
    "CACHE_VERSION",
    "CHECKSUM",
    "COLUMNS",
    "DamagedCache",
    "cache_dir",
    "checksum",
    "default_data_home",
    "fingerprint",
    "get_data_home",
    "load",
    "store",
]
