"""Read MovieLens ratings bytes into checked column arrays (kernels: ``fastmf._kernels.parsing``).

The three ratings formats (``u.data``, ``ratings.dat``, ``ratings.csv``) differ only in their
separator and header, so one parser serves them all. The bytes are cut into chunks at line
starts and parsed on several threads, or parsed block by block as a zip member is inflated.
"""

from __future__ import annotations

import queue
import threading
from typing import IO

import numba
import numpy as np

from fastmf._kernels import parsing as K
from fastmf._threads import KERNEL_LOCK
from fastmf.data.datasets._checks import check_format, check_scale, error_message
from fastmf.data.datasets.releases import RatingsFormat, Scale

# Inputs smaller than this are parsed on one thread: the parallel kernel costs more to start
# (and to compile on first use) than it saves.
PARALLEL_MIN_BYTES = 8 << 20


def _chunk_bounds(buf: np.ndarray, start: int, n_chunks: int) -> np.ndarray:
    """Chunk edges in ``buf[start:]``, each at the start of a line."""
    size = buf.size
    edges = [start]
    for c in range(1, n_chunks):
        guess = start + (size - start) * c // n_chunks
        edge = int(K.next_line_start(buf, max(guess - 1, edges[-1]), size))
        if edge > edges[-1] and edge < size:
            edges.append(edge)
    edges.append(size)
    return np.asarray(edges, dtype=np.int64)


def parse_ratings(
    buf: np.ndarray,
    fmt: RatingsFormat,
    where: str,
    *,
    release: str | None = None,
    scale: Scale | None = None,
    parallel: bool | None = None,
) -> dict[str, np.ndarray]:
    """Parse a ratings file's bytes into ``user``, ``item``, ``rating``, ``timestamp`` arrays.

    Parameters
    ----------
    buf : ndarray of shape (n_bytes,), dtype uint8
        The whole file.
    fmt : RatingsFormat
        The format the file must be in.
    where : str
        How to name the file in error messages.
    release : str, optional
        The release the file belongs to, for messages.
    scale : Scale, optional
        The ratings the release allows; any other value is an error.
    parallel : bool, optional
        Parse with several threads; by default when the input is large.

    Returns
    -------
    dict of str to ndarray
        ``user``, ``item`` (int32), ``rating`` (float32), ``timestamp`` (int64), all of one length.
    """
    start = check_format(buf, fmt, where, release)
    if parallel is None:
        parallel = buf.size >= PARALLEL_MIN_BYTES and numba.get_num_threads() > 1
    n_chunks = 4 * numba.get_num_threads() if parallel else 1
    bounds = _chunk_bounds(buf, start, n_chunks)
    with KERNEL_LOCK:
        counts = (K.count_lines_parallel if parallel else K.count_lines)(buf, bounds)
    first = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    n = int(first[-1])
    if n == 0:
        raise ValueError(f"{where} holds no ratings; expected {fmt.description}")
    out = _empty_columns(n)
    sep = np.frombuffer(fmt.sep, dtype=np.uint8)
    kernel = K.parse_chunks_parallel if parallel else K.parse_chunks
    with KERNEL_LOCK:
        written, codes, offsets = kernel(
            buf, bounds, first[:-1], sep, out["user"], out["item"], out["rating"], out["timestamp"]
        )
    bad = np.flatnonzero(codes)
    if bad.size:
        c = int(bad[0])
        raise ValueError(error_message(buf, int(codes[c]), int(offsets[c]), fmt, where, release))
    if not np.array_equal(written, counts):  # cannot happen: both kernels agree on empty lines
        raise RuntimeError(f"internal error parsing {where}: line counts disagree")
    if scale is not None:
        check_scale(out["rating"], scale, where, release, buf=buf, start=start)
    return out


def _empty_columns(n: int) -> dict[str, np.ndarray]:
    return {
        "user": np.empty(n, dtype=np.int32),
        "item": np.empty(n, dtype=np.int32),
        "rating": np.empty(n, dtype=np.float32),
        "timestamp": np.empty(n, dtype=np.int64),
    }


STREAM_BLOCK = 16 << 20


def parse_ratings_stream(
    stream: IO[bytes],
    size: int,
    fmt: RatingsFormat,
    where: str,
    *,
    release: str | None = None,
    scale: Scale | None = None,
    read_errors: tuple[type[BaseException], ...] = (OSError,),
) -> dict[str, np.ndarray]:
    """Like :func:`parse_ratings`, but reading ``size`` bytes from ``stream`` as it parses.

    A thread reads (and, for a zip member, inflates) the stream block by block into one buffer
    while this thread parses each block's complete lines, so inflating and parsing overlap.
    Errors of kinds ``read_errors`` raised by the stream become a ValueError naming ``where``.
    """
    buf = np.empty(max(size, 0), dtype=np.uint8)
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        pos = 0
        try:
            view = memoryview(buf)  # type: ignore[arg-type]  # numpy arrays are buffers
            while not stop.is_set():
                block = stream.read(STREAM_BLOCK)
                if not block:
                    break
                if pos + len(block) > size:
                    raise ValueError(
                        f"{where} holds more than the {size:,} bytes its archive lists: the "
                        "archive is corrupt or truncated. Delete it and download it again."
                    )
                view[pos : pos + len(block)] = block
                pos += len(block)
                ready.put((pos, False))
            if pos != size and not stop.is_set():
                raise ValueError(
                    f"{where} ends after {pos:,} of its {size:,} bytes: the archive is corrupt "
                    "or truncated. Delete it and download it again."
                )
            ready.put((pos, True))
        except BaseException as exc:  # noqa: BLE001 (the parsing thread raises it)
            ready.put(exc)

    reader = threading.Thread(target=produce, name="fastmf-read", daemon=True)
    reader.start()
    try:
        return _parse_blocks(buf, ready, fmt, where, release, scale, read_errors)
    finally:
        stop.set()
        reader.join()


def _parse_blocks(
    buf: np.ndarray,
    ready: queue.Queue,
    fmt: RatingsFormat,
    where: str,
    release: str | None,
    scale: Scale | None,
    read_errors: tuple[type[BaseException], ...],
) -> dict[str, np.ndarray]:
    """Parse the lines of ``buf`` as the reader reports them ready; the rows, shrunk to fit."""
    # Each line takes at least 8 bytes ("1,1,1,1\n"), which bounds the row count. np.empty does
    # not touch memory, so the unused tail of the columns costs address space only.
    capacity = buf.size // 8 + 1
    out = _empty_columns(capacity)
    sep = np.frombuffer(fmt.sep, dtype=np.uint8)
    start = -1
    done = 0
    row = 0
    finished = False
    while not finished:
        item = ready.get()
        while isinstance(item, tuple) and not item[1] and not ready.empty():
            item = ready.get()  # parse all that has arrived in one call
        if not isinstance(item, tuple):  # the reader failed with this exception
            _raise_read_error(item, where, read_errors)
        avail, finished = item
        if start < 0:
            if not finished and K.next_line_start(buf, 0, avail) >= avail:
                continue  # the first line is not complete yet
            start = check_format(buf[:avail], fmt, where, release)
            done = start
        end = avail if finished else int(_last_line_end(buf, done, avail))
        if end <= done:
            continue
        bounds = np.array([done, end], dtype=np.int64)
        first = np.array([row], dtype=np.int64)
        written, codes, offsets = K.parse_chunks(
            buf, bounds, first, sep, out["user"], out["item"], out["rating"], out["timestamp"]
        )
        if codes[0]:
            raise ValueError(
                error_message(buf, int(codes[0]), int(offsets[0]), fmt, where, release)
            )
        row += int(written[0])
        done = end
    if row == 0:
        raise ValueError(f"{where} holds no ratings; expected {fmt.description}")
    for column in out.values():
        # shrink in place: realloc gives the unused tail back without copying the rows
        column.resize(row, refcheck=False)
    if scale is not None:
        check_scale(out["rating"], scale, where, release, buf=buf, start=start)
    return out


def _raise_read_error(
    exc: BaseException, where: str, read_errors: tuple[type[BaseException], ...]
) -> None:
    if not isinstance(exc, read_errors):
        raise exc
    raise ValueError(
        f"{where}: cannot read the archive ({exc}); it is corrupt or truncated. "
        "Delete it and download it again."
    ) from exc


def _last_line_end(buf: np.ndarray, lo: int, hi: int) -> int:
    """Index just past the last newline in ``buf[lo:hi]`` (``lo`` when there is none)."""
    hits = np.flatnonzero(buf[max(lo, hi - (1 << 20)) : hi] == K.NEWLINE)
    if hits.size:
        return max(lo, hi - (1 << 20)) + int(hits[-1]) + 1
    hits = np.flatnonzero(buf[lo:hi] == K.NEWLINE)
    return lo + int(hits[-1]) + 1 if hits.size else lo
