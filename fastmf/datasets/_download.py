"""Old home of the MovieLens download: it lives in ``fastmf.data.datasets._download`` now."""

from fastmf.data.datasets._download import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    base_url,
    download,
    fetch_md5,
    parse_md5,
)
from fastmf.errors import DownloadError

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DownloadError",
    "base_url",
    "download",
    "fetch_md5",
    "parse_md5",
]
