"""Numba kernels that parse MovieLens ratings text into column arrays, and that check the
parsed cache of those arrays (a checksum of their bytes, the parser's value checks).

Every release stores one rating per line as four numbers, ``user SEP item SEP rating SEP
timestamp``, with SEP a tab (``u.data``), ``::`` (``ratings.dat``) or a comma (``ratings.csv``).
The Python side (``fastmf.data.datasets._parse``) skips any header, cuts the bytes into chunks
at line starts, counts each chunk's lines, and gives each chunk its own slice of the output
arrays; these kernels then fill the slices, one chunk per thread, so no two threads write the
same row.

A kernel never raises: a line it cannot read stops its chunk, and the chunk reports an error code
and the byte offset where reading failed, for the Python side to turn into a message.

Legend: ``buf`` the bytes (uint8), ``bounds`` the chunk edges (int64, n_chunks + 1), ``first``
each chunk's first output row, ``sep`` the separator's bytes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastmf._kernels.jit import JIT, JIT_INLINE

NEWLINE = 10
CR = 13

# Error codes. The field (0 user, 1 item, 2 rating, 3 timestamp) is added to the kind.
ERR_NONE = 0
ERR_NUMBER = 10  # the field is not a number of the expected form
ERR_TOO_LARGE = 20  # the number does not fit its column
ERR_SEPARATOR = 30  # the separator after the field is missing (too few fields or another format)
ERR_LINE_END = 40  # something follows the fourth field (too many fields or another format)

_INT32_MAX = 2**31 - 1
_INT64_DIGITS = 18  # at most this many digits, so the value fits in int64 without overflow


@njit(**JIT)
def _read_uint(buf, i, hi):
    """Read an unsigned decimal at ``buf[i:]``; return (value, next index, n_digits)."""
    v = 0
    n = 0
    while i < hi:
        c = buf[i]
        if c < 48 or c > 57:
            break
        if n < _INT64_DIGITS:
            v = v * 10 + (c - 48)
        n += 1
        i += 1
    return v, i, n


@njit(**JIT)
def _at_sep(buf, i, hi, sep):
    """Whether ``sep`` starts at ``buf[i]``."""
    m = sep.shape[0]
    if i + m > hi:
        return False
    for k in range(m):
        if buf[i + k] != sep[k]:
            return False
    return True


@njit(**JIT)
def count_lines(buf, bounds):
    """Number of non-empty lines in each chunk ``buf[bounds[c]:bounds[c + 1]]`` (serial).

    A line is counted when it holds any byte besides its line end. Returns int64 (n_chunks,).
    """
    n_chunks = bounds.shape[0] - 1
    counts = np.zeros(n_chunks, dtype=np.int64)
    for c in range(n_chunks):
        counts[c] = _count_chunk(buf, bounds[c], bounds[c + 1])
    return counts


@njit(parallel=True, **JIT)
def count_lines_parallel(buf, bounds):
    """Same as :func:`count_lines`, one chunk per thread; each thread writes its own slot."""
    n_chunks = bounds.shape[0] - 1
    counts = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        counts[c] = _count_chunk(buf, bounds[c], bounds[c + 1])
    return counts


@njit(**JIT)
def _count_chunk(buf, lo, hi):
    n = 0
    empty = True
    for i in range(lo, hi):
        c = buf[i]
        if c == NEWLINE:
            if not empty:
                n += 1
            empty = True
        elif c != CR:
            empty = False
    if not empty:
        n += 1
    return n


@njit(**JIT)
def parse_chunk(buf, lo, hi, sep, row, users, items, ratings, timestamps):
    """Parse the lines of ``buf[lo:hi]`` into the output arrays from ``row`` on.

    Writes ``users``, ``items`` (int32), ``ratings`` (float32), ``timestamps`` (int64) at rows
    ``row, row + 1, ...``. Empty lines are skipped. Returns (rows written, error code, byte offset
    of the error); on an error the chunk stops there.
    """
    n = 0
    i = lo
    while i < hi:
        c = buf[i]
        if c == NEWLINE:
            i += 1
            continue
        if c == CR and (i + 1 == hi or buf[i + 1] == NEWLINE):
            i += 1
            continue
        # user and item: unsigned integers that fit int32
        for field in range(2):
            v, j, nd = _read_uint(buf, i, hi)
            if nd == 0:
                return n, ERR_NUMBER + field, i
            if nd > 10 or v > _INT32_MAX:
                return n, ERR_TOO_LARGE + field, i
            if not _at_sep(buf, j, hi, sep):
                return n, ERR_SEPARATOR + field, j
            if field == 0:
                users[row + n] = v
            else:
                items[row + n] = v
            i = j + sep.shape[0]
        # rating: digits, optionally a point and more digits
        ip, j, nd = _read_uint(buf, i, hi)
        if nd == 0 or nd > 6:
            return n, (ERR_NUMBER if nd == 0 else ERR_TOO_LARGE) + 2, i
        value = float(ip)
        if j < hi and buf[j] == 46:  # "."
            fp, k, nf = _read_uint(buf, j + 1, hi)
            if nf == 0 or nf > 6:
                return n, ERR_NUMBER + 2, i
            value += fp / 10.0**nf
            j = k
        if not _at_sep(buf, j, hi, sep):
            return n, ERR_SEPARATOR + 2, j
        ratings[row + n] = value
        i = j + sep.shape[0]
        # timestamp: an integer, maybe negative
        neg = False
        if i < hi and buf[i] == 45:  # "-"
            neg = True
            i += 1
        t, j, nd = _read_uint(buf, i, hi)
        if nd == 0:
            return n, ERR_NUMBER + 3, i
        if nd > _INT64_DIGITS:
            return n, ERR_TOO_LARGE + 3, i
        timestamps[row + n] = -t if neg else t
        # line end: "\n", "\r\n" or the end of the chunk
        if j < hi and buf[j] == CR:
            j += 1
        if j < hi and buf[j] != NEWLINE:
            return n, ERR_LINE_END + 3, j
        i = j + 1
        n += 1
    return n, ERR_NONE, hi


@njit(**JIT)
def parse_chunks(buf, bounds, first, sep, users, items, ratings, timestamps):
    """Parse every chunk in turn (the serial twin of :func:`parse_chunks_parallel`).

    Returns int64 arrays (n_chunks,): rows written, error code and error offset of each chunk.
    """
    n_chunks = bounds.shape[0] - 1
    written = np.zeros(n_chunks, dtype=np.int64)
    codes = np.zeros(n_chunks, dtype=np.int64)
    where = np.zeros(n_chunks, dtype=np.int64)
    for c in range(n_chunks):
        written[c], codes[c], where[c] = parse_chunk(
            buf, bounds[c], bounds[c + 1], sep, first[c], users, items, ratings, timestamps
        )
    return written, codes, where


@njit(parallel=True, **JIT)
def parse_chunks_parallel(buf, bounds, first, sep, users, items, ratings, timestamps):
    """Parse the chunks in parallel, one per thread.

    Chunk ``c`` writes only rows ``first[c] .. first[c + 1] - 1`` of the outputs and slot ``c`` of
    the returned arrays, so there are no races. Returns the same as :func:`parse_chunks`.
    """
    n_chunks = bounds.shape[0] - 1
    written = np.zeros(n_chunks, dtype=np.int64)
    codes = np.zeros(n_chunks, dtype=np.int64)
    where = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        w, e, p = parse_chunk(
            buf, bounds[c], bounds[c + 1], sep, first[c], users, items, ratings, timestamps
        )
        written[c] = w
        codes[c] = e
        where[c] = p
    return written, codes, where


@njit(**JIT)
def next_line_start(buf, i, hi):
    """Index just past the first newline at or after ``i`` (``hi`` when there is none)."""
    while i < hi:
        if buf[i] == NEWLINE:
            return i + 1
        i += 1
    return hi


@njit(**JIT)
def off_scale(ratings, low, high, step):
    """(number of ratings off the scale, index of the first): outside [low, high] or not a whole
    multiple of ``step``. Reads ``ratings`` only."""
    count = 0
    first = -1
    for r in range(ratings.shape[0]):
        v = ratings[r]
        k = v / step
        if v < low or v > high or k != np.floor(k):
            if first < 0:
                first = r
            count += 1
    return count, first


# ---------------------------------------------------------------------------------------------
# checking the parsed cache: the parser's value checks (the checksum is in ``hashing``)


@njit(**JIT_INLINE)
def _off_scale(v, low, high, step):
    k = v / step
    return not np.isfinite(v) or v < low or v > high or k != np.floor(k)


@njit(**JIT)
def _block_faults(users, items, ratings, low, high, step, lo, hi, first):
    """Fill ``first[0..2]`` for rows ``lo..hi``: one branch-free pass that counts, then a search
    for the first row only in a block that has a fault."""
    min_user = np.int64(0)
    min_item = np.int64(0)
    n_bad = 0
    for r in range(lo, hi):
        min_user = min(min_user, np.int64(users[r]))
        min_item = min(min_item, np.int64(items[r]))
        n_bad += _off_scale(ratings[r], low, high, step)
    if min_user < 0 or min_item < 0 or n_bad:
        for r in range(lo, hi):
            if users[r] < 0 and first[0] < 0:
                first[0] = r
            if items[r] < 0 and first[1] < 0:
                first[1] = r
            if _off_scale(ratings[r], low, high, step) and first[2] < 0:
                first[2] = r


@njit(parallel=True, **JIT)
def column_faults(users, items, ratings, low, high, step, block):
    """The first row (or -1) of each fault a parsed column can have: a negative user id, a
    negative item id, a rating that is not finite or off the scale ``low..high`` in steps of
    ``step``. Blocks of ``block`` rows in parallel, each writing its own slots; reads only."""
    n = users.shape[0]
    n_blocks = (n + block - 1) // block
    first = np.full((n_blocks, 3), -1, dtype=np.int64)
    for b in prange(n_blocks):
        _block_faults(users, items, ratings, low, high, step, b * block,
                      min(n, (b + 1) * block), first[b])  # fmt: skip
    out = np.full(3, -1, dtype=np.int64)
    for b in range(n_blocks):
        for f in range(3):
            if out[f] < 0 and first[b, f] >= 0:
                out[f] = first[b, f]
    return out
