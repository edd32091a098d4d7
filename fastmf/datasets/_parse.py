"""Old home of the ratings parser: it lives in ``fastmf.data.datasets._parse`` now, its checks
in ``_checks`` and the formats and scales in ``releases``."""

from fastmf.data.datasets._checks import check_format, check_scale, first_line, sniff_format
from fastmf.data.datasets._parse import (
    PARALLEL_MIN_BYTES,
    STREAM_BLOCK,
    parse_ratings,
    parse_ratings_stream,
)
from fastmf.data.datasets.releases import (
    CSV,
    DAT,
    FORMAT_BY_FILENAME,
    HALF_STARS,
    STARS_1_5,
    UDATA,
    RatingsFormat,
    Scale,
)

__all__ = [
    "CSV",
    "DAT",
    "FORMAT_BY_FILENAME",
    "HALF_STARS",
    "PARALLEL_MIN_BYTES",
    "STARS_1_5",
    "STREAM_BLOCK",
    "UDATA",
    "RatingsFormat",
    "Scale",
    "check_format",
    "check_scale",
    "first_line",
    "parse_ratings",
    "parse_ratings_stream",
    "sniff_format",
]
