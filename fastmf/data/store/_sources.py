"""What a store is built from, as a stream of checked chunks: a DataFrame (cut into slices), an
iterable of DataFrame chunks (read once), or a ratings file in any format ``load_movielens``
reads (read and parsed a few tens of megabytes at a time, never whole)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pandas as pd

from fastmf._kernels import parsing as PK
from fastmf._validation import check_ratings_values
from fastmf.data.datasets import _cache, _zip
from fastmf.data.datasets._checks import check_format, check_scale, error_message
from fastmf.data.datasets._sources import locate, open_zip, ratings_entry
from fastmf.data.datasets.releases import default_scale
from fastmf.data.ratings import _timestamps

FILE_CHUNK_BYTES = 32 << 20


@dataclass
class Chunk:
    """One checked chunk of ratings: raw ids, float32 ratings, int64 timestamps or None."""

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray | None
    first_row: int  # the source row of the chunk's first rating


def chunks_of(source: Any, chunk_size: int) -> Iterator[Chunk]:
    """The checked chunks of ``source`` in order."""
    if isinstance(source, pd.DataFrame):
        frames: Iterable[Any] = (
            source.iloc[lo : lo + chunk_size] for lo in range(0, max(len(source), 1), chunk_size)
        )
    elif isinstance(source, (str, os.PathLike)):
        frames = file_frames(source)
    elif isinstance(source, Iterable):
        frames = source
    else:
        raise TypeError(
            f"a store is built from a ratings DataFrame, an iterable of DataFrame chunks or a "
            f"ratings file path, not {type(source).__name__}"
        )
    row = 0
    for k, frame in enumerate(frames):
        chunk = checked_chunk(frame, k, row)
        row += len(chunk.values)
        yield chunk


def checked_chunk(frame: Any, k: int, first_row: int) -> Chunk:
    """Chunk ``k`` checked: a DataFrame with user, item and rating columns, finite ratings."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"chunk {k} of the source is a {type(frame).__name__}; each chunk must be a "
            f"DataFrame with columns user, item, rating[, timestamp]"
        )
    missing = [c for c in ("user", "item", "rating") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"chunk {k} of the source (from row {first_row}) has no column "
            f"{', '.join(map(repr, missing))} (its columns: {list(frame.columns)}): a truncated "
            f"or malformed chunk; each chunk needs user, item and rating"
        )
    try:
        values = check_ratings_values(frame["rating"].to_numpy()).astype(np.float32)
        ts = _timestamps(frame["timestamp"], "timestamp") if "timestamp" in frame else None
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"chunk {k} of the source (from row {first_row}): {exc}") from exc
    return Chunk(frame["user"].to_numpy(), frame["item"].to_numpy(), values, ts, first_row)


def file_frames(path: str | os.PathLike[str]) -> Iterator[pd.DataFrame]:
    """A MovieLens ratings file (or its folder or zip) as DataFrames of about
    ``FILE_CHUNK_BYTES`` of text each, parsed as they are read."""
    src = locate(path, _cache.get_data_home(None), download=False, base_url=None, progress=False)
    fmt, member = ratings_entry(src)
    where = src.describe(member)
    release = src.release.name if src.release else None
    scale = src.release.scale if src.release else default_scale(fmt)
    sep = np.frombuffer(fmt.sep, dtype=np.uint8)
    with _open_stream(src, member) as stream:
        carry = b""
        first = True
        while True:
            data = stream.read(FILE_CHUNK_BYTES)
            final = not data
            block = carry + data
            end = len(block) if final else block.rfind(b"\n") + 1
            if end <= 0 and not final:
                carry = block
                continue
            buf = np.frombuffer(block, dtype=np.uint8, count=end)
            carry = block[end:]
            start = check_format(buf, fmt, where, release) if first else 0
            first = False
            if end > start:
                yield _parse(buf, start, sep, fmt, where, release, scale)
            if final:
                return


def _parse(buf, start, sep, fmt, where, release, scale) -> pd.DataFrame:
    n = (buf.size - start) // 8 + 2
    cols = {
        "user": np.empty(n, np.int32),
        "item": np.empty(n, np.int32),
        "rating": np.empty(n, np.float32),
        "timestamp": np.empty(n, np.int64),
    }
    bounds = np.array([start, buf.size], dtype=np.int64)
    written, codes, offsets = PK.parse_chunks(
        buf, bounds, np.zeros(1, np.int64), sep, cols["user"], cols["item"], cols["rating"],
        cols["timestamp"],
    )  # fmt: skip
    if codes[0]:
        raise ValueError(error_message(buf, int(codes[0]), int(offsets[0]), fmt, where, release))
    rows = int(written[0])
    out = {k: v[:rows] for k, v in cols.items()}
    check_scale(out["rating"], scale, where, release)
    return pd.DataFrame(out, copy=False)


@contextlib.contextmanager
def _open_stream(src: Any, member: str | None) -> Iterator[IO[bytes]]:
    if src.kind == "zip":
        assert member is not None
        with open_zip(src.path) as zf, _zip.open_member(zf, zf.getinfo(member)) as stream:
            yield stream
        return
    path = src.path / member if src.kind == "dir" and member else src.path
    with open(path, "rb") as f:
        yield f
