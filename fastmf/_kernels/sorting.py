"""Numba kernels that order rating triples: dense codes for integer ids, bucketing by user,
sorting each user's items, finding duplicate pairs and laying ratings out block by block for the
training schedule.

Legend: ``users``/``items`` are dense int32 indices, ``values`` float32 ratings, ``n`` the number
of ratings. Every kernel here is deterministic: its output depends on its input only, never on the
number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastmf._kernels.jit import JIT, JIT_INLINE, SERIAL_BELOW, sized_kernel
from fastmf._threads import KERNEL_LOCK, current_threads

N_CHUNKS = 16  # pieces of parallel work: fixed, not the thread count, so results never depend on it


@sized_kernel(**JIT)
def int_range(ids, n_threads):
    """(min, max) of a non-empty integer array in one parallel pass (a piece a thread)."""
    n = ids.shape[0]
    t = max(1, min(n_threads, n))
    lows = np.empty(t, dtype=np.int64)
    highs = np.empty(t, dtype=np.int64)
    for c in prange(t):
        lo = ids[c * n // t]  # in the ids' own dtype: the loop vectorizes
        hi = lo
        for j in range(c * n // t, (c + 1) * n // t):
            v = ids[j]
            lo = min(lo, v)
            hi = max(hi, v)
        lows[c] = lo
        highs[c] = hi
    return lows.min(), highs.max()


@sized_kernel(**JIT)
def thread_counts(keys, low, n_keys, n_threads):
    """How often each key of ``low..low + n_keys - 1`` occurs in ``keys`` (int64, n_keys), a
    piece a thread: a count is a sum of ones, the same whatever the pieces."""
    n = keys.shape[0]
    t = max(1, n_threads)
    per = np.zeros((t, n_keys), dtype=np.int64)
    for c in prange(t):
        for j in range(c * n // t, (c + 1) * n // t):
            per[c, keys[j] - low] += 1
    total = np.empty(n_keys, dtype=np.int64)
    for k in prange(n_keys):
        s = per[0, k]
        for c in range(1, t):
            s += per[c, k]
        total[k] = s
    return total


def int_code_table(
    ids: np.ndarray, low: np.int64, high: np.int64, n_threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The code of every id slot ``low..high`` (int32, sorted id order), the m distinct ids and
    how many ratings each has (int64, in code order): the ids counted in parallel
    (``thread_counts``), then the slots that occur numbered in order. Under ``SERIAL_BELOW``
    ids, numpy does the same (the kernels would cost a small fit more to compile than to run)."""
    if ids.shape[0] >= SERIAL_BELOW:
        return code_table(thread_counts(ids, low, high - low + 1, n_threads), low)
    counts = np.bincount(ids.astype(np.int64) - low, minlength=int(high - low + 1))
    present = counts > 0
    table = (np.cumsum(present) - present).astype(np.int32)
    uniques = np.flatnonzero(present).astype(np.int64) + low
    return table, uniques, counts[present].astype(np.int64)


@njit(**JIT)
def code_table(counts, low):
    """``int_code_table`` from the count of every id slot from ``low``."""
    table = np.empty(counts.shape[0], dtype=np.int32)
    m = 0
    for v in range(counts.shape[0]):
        table[v] = m
        if counts[v]:
            m += 1
    uniques = np.empty(m, dtype=np.int64)
    code_counts = np.empty(m, dtype=np.int64)
    for v in range(counts.shape[0]):
        if counts[v]:
            uniques[table[v]] = v + low
            code_counts[table[v]] = counts[v]
    return table, uniques, code_counts


@sized_kernel(**JIT)
def codes_from_table(ids, table, low, out):
    """``out[j] = table[ids[j] - low]`` in parallel (each piece writes its own rows)."""
    n = ids.shape[0]
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            out[j] = table[ids[j] - low]


@sized_kernel(**JIT)
def dense_int_codes(ids, low, high):
    """Codes 0..m-1 of integer ids in [low, high], in sorted id order, and the m distinct ids
    (``int_code_table``, then every id looked up in parallel)."""
    table, uniques, _ = code_table(thread_counts(ids, low, high - low + 1, 1), low)
    codes = np.empty(ids.shape[0], dtype=np.int32)
    codes_from_table(ids, table, low, codes)
    return codes, uniques


@sized_kernel(**JIT)
def chunk_counts(keys, n_keys):
    """How often each key in 0..n_keys-1 occurs in each of the N_CHUNKS pieces of ``keys``:
    int64 (N_CHUNKS, n_keys), each piece counted by one thread."""
    n = keys.shape[0]
    counts = np.zeros((N_CHUNKS, n_keys), dtype=np.int64)
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            counts[c, keys[j]] += 1
    return counts


@njit(**JIT)
def chunk_cursors(counts):
    """From each piece's key counts (N_CHUNKS, n_keys): the start of each key's run in the
    stably sorted order (n_keys + 1 offsets), and where each piece writes its first row of each
    key (N_CHUNKS, n_keys), so that pieces writing in parallel give the serial order."""
    n_keys = counts.shape[1]
    offsets = np.zeros(n_keys + 1, dtype=np.int64)
    cursor = np.empty((N_CHUNKS, n_keys), dtype=np.int64)
    pos = 0
    for k in range(n_keys):
        offsets[k] = pos
        for c in range(N_CHUNKS):
            cursor[c, k] = pos
            pos += counts[c, k]
    offsets[n_keys] = pos
    return offsets, cursor


def key_counts(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """``np.bincount(keys, minlength=n_keys)`` for keys in 0..n_keys-1, counted in parallel
    (by numpy under ``SERIAL_BELOW`` keys)."""
    if keys.shape[0] < SERIAL_BELOW:
        return np.bincount(keys, minlength=n_keys).astype(np.int64)
    with KERNEL_LOCK:
        return thread_counts(keys, np.int64(0), n_keys, current_threads())


@sized_kernel(**JIT)
def stable_bucket_order(keys, n_keys):
    """The permutation that sorts ``keys`` stably (counting sort), and the bucket offsets.

    The keys are cut into N_CHUNKS pieces that count, then write, their own rows in parallel, at
    the positions the serial counting sort gives them."""
    n = keys.shape[0]
    offsets, cursor = chunk_cursors(chunk_counts(keys, n_keys))
    order = np.empty(n, dtype=np.int64)
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            k = keys[j]
            order[cursor[c, k]] = j
            cursor[c, k] += 1
    return order, offsets


@sized_kernel(**JIT)
def sort_segments_by_item(order, offsets, items):
    """Within each segment ``order[offsets[s]:offsets[s+1]]``, sort the rows by item and then by
    row number (so duplicates are adjacent, earliest row first). Rewrites ``order`` in place;
    each segment is owned by one thread. Returns how many rows repeat the item of the row before
    them in their segment (with segments by user: the number of repeated pairs)."""
    n_segments = offsets.shape[0] - 1
    repeats = np.zeros(n_segments, dtype=np.int64)
    for s in prange(n_segments):
        lo = offsets[s]
        hi = offsets[s + 1]
        if hi - lo < 2:
            continue
        keys = np.empty(hi - lo, dtype=np.int64)
        for j in range(lo, hi):
            row = order[j]
            keys[j - lo] = (np.int64(items[row]) << 36) | row
        keys.sort()
        mask = (np.int64(1) << 36) - 1
        order[lo] = keys[0] & mask
        for j in range(lo + 1, hi):
            order[j] = keys[j - lo] & mask
            if keys[j - lo] >> 36 == keys[j - lo - 1] >> 36:
                repeats[s] += 1
    return repeats.sum()


@sized_kernel(**JIT)
def sort_unsorted_segments(values, offsets):
    """Sort each segment ``values[offsets[s]:offsets[s+1]]`` in place, skipping the segments that
    are already sorted (each segment is owned by one thread)."""
    for s in prange(offsets.shape[0] - 1):
        lo = offsets[s]
        hi = offsets[s + 1]
        for j in range(lo + 1, hi):
            if values[j] < values[j - 1]:
                values[lo:hi] = np.sort(values[lo:hi])
                break


@sized_kernel(**JIT)
def _scatter_by_key(keys, n_keys, carry_a, carry_b, carry_c, out_a, out_b, out_c):
    """One stable counting-sort pass: the rows of ``carry_a``/``carry_b`` (and ``carry_c``
    when it is as long as ``keys``) moved to ``out_*`` in stable ``keys`` order. N_CHUNKS
    pieces count, then write, their own rows in parallel at the serial sort's positions.
    Returns the key offsets (n_keys + 1)."""
    n = keys.shape[0]
    offsets, cursor = chunk_cursors(chunk_counts(keys, n_keys))
    with_c = carry_c.shape[0] == n
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            k = keys[j]
            p = cursor[c, k]
            cursor[c, k] = p + 1
            out_a[p] = carry_a[j]
            out_b[p] = carry_b[j]
            if with_c:
                out_c[p] = carry_c[j]
    return offsets


@sized_kernel(**JIT)
def _scatter_runs_by_key(keys, n_keys, runs, carry_b, carry_c, out_runs, out_b, out_c):
    """``_scatter_by_key`` for data sorted into runs (row j belongs to the run k with
    ``runs[k] <= j < runs[k + 1]``): moves the run number of each row (``out_runs``) without
    an array that holds it, and ``carry_b`` (and ``carry_c`` when as long as ``keys``)."""
    n = keys.shape[0]
    offsets, cursor = chunk_cursors(chunk_counts(keys, n_keys))
    with_c = carry_c.shape[0] == n
    for c in prange(N_CHUNKS):
        lo = c * n // N_CHUNKS
        run = np.searchsorted(runs, lo, side="right") - 1
        for j in range(lo, (c + 1) * n // N_CHUNKS):
            while runs[run + 1] <= j:
                run += 1
            k = keys[j]
            p = cursor[c, k]
            cursor[c, k] = p + 1
            out_runs[p] = run
            out_b[p] = carry_b[j]
            if with_c:
                out_c[p] = carry_c[j]
    return offsets


@sized_kernel(**JIT)
def _fill_runs_counting_repeats(offsets, items, out):
    """``out[offsets[k]:offsets[k + 1]] = k`` for every user k (each run written by one thread),
    and how many rows repeat the item of the row before them inside their user's run (with
    items sorted in each run: the repeated pairs)."""
    n_keys = offsets.shape[0] - 1
    repeats = np.zeros(n_keys, dtype=np.int64)
    for k in prange(n_keys):
        lo = offsets[k]
        hi = offsets[k + 1]
        r = 0
        for j in range(lo, hi):
            out[j] = k
            if j > lo and items[j] == items[j - 1]:
                r += 1
        repeats[k] = r
    return repeats.sum()


def sort_by_user_item(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    extra: np.ndarray,
    n_users: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Rating triples sorted by (user, item), equal pairs in row order: two stable counting
    sorts (by item, then by user), each one parallel pass that moves the data itself.

    ``extra`` (int64, e.g. timestamps) is moved along when it is as long as the ratings (pass an
    empty array otherwise). Returns the sorted users, items, values and extra, and the number of
    rows that repeat the (user, item) pair of the row before them. The buffers are numpy's (whose
    large arrays get huge pages where the system offers them: fewer page faults than Numba's)."""
    n, m = users.shape[0], extra.shape[0]
    users_1, values_1 = np.empty(n, np.int32), np.empty(n, values.dtype)
    extra_1 = np.empty(m, np.int64)
    with KERNEL_LOCK:
        runs = _scatter_by_key(items, n_items, users, values, extra, users_1, values_1, extra_1)
        users_2, items_2 = np.empty(n, np.int32), np.empty(n, np.int32)
        values_2, extra_2 = np.empty(n, values.dtype), np.empty(m, np.int64)
        offsets = _scatter_runs_by_key(
            users_1, n_users, runs, values_1, extra_1, items_2, values_2, extra_2
        )
        del users_1, values_1, extra_1
        repeats = _fill_runs_counting_repeats(offsets, items_2, users_2)
    return users_2, items_2, values_2, extra_2, int(repeats)


@sized_kernel(**JIT)
def sorted_by_user_item(users, items):
    """Whether the ratings are in (user, item) order, each pair at most once (N_CHUNKS pieces
    checked in parallel, each with the row before it)."""
    n = users.shape[0]
    bad = np.zeros(N_CHUNKS, dtype=np.bool_)
    for c in prange(N_CHUNKS):
        for j in range(max(1, c * n // N_CHUNKS), (c + 1) * n // N_CHUNKS):
            if users[j] < users[j - 1] or (users[j] == users[j - 1] and items[j] <= items[j - 1]):
                bad[c] = True
                break
    return not bad.any()


@njit(**JIT)
def is_sorted_by_user_item(users, items):
    """Whether the ratings are in (user, item) order, each pair at most once: then every layout
    fastmf needs is one stable bucketing away, with no sorting."""
    for j in range(1, users.shape[0]):
        if users[j] < users[j - 1] or (users[j] == users[j - 1] and items[j] <= items[j - 1]):
            return False
    return True


@njit(**JIT)
def find_duplicates(order, offsets, users, items):
    """Rows whose (user, item) pair appears again later in the data, given ``order`` sorted by
    user then item then row (see ``sort_segments_by_item``). Returns the earlier rows of each
    duplicated pair and, for each, the row that repeats it last."""
    dup_first = []
    dup_last = []
    n = order.shape[0]
    j = 0
    while j < n:
        row = order[j]
        k = j + 1
        while k < n and users[order[k]] == users[row] and items[order[k]] == items[row]:
            k += 1
        if k - j > 1:
            for m in range(j, k - 1):
                dup_first.append(order[m])
                dup_last.append(order[k - 1])
        j = k
    return np.array(dup_first, dtype=np.int64), np.array(dup_last, dtype=np.int64)


# Each block's ratings, in (user, item) order, are cut into STREAMS equal runs that are then
# interleaved (the first rating of each run, then the second of each, ...). Consecutive ratings
# then belong to different users, so the processor overlaps one rating's update with the next
# rating's dot product instead of waiting for a user row it has just written.
STREAMS = 3


@njit(**JIT_INLINE)
def interleaved_position(rank, n, n_streams):
    """Where the rating of rank ``rank`` (in (user, item) order) of an n-rating block goes when
    its STREAMS runs are interleaved. Runs hold n // n_streams ratings, the last one the rest."""
    run = n // n_streams
    if run == 0:
        return rank
    stream = 0  # min(rank // run, n_streams - 1), without a division per rating
    for s in range(1, n_streams):
        if rank >= s * run:
            stream += 1
    within = rank - stream * run
    if within < run:
        return within * n_streams + stream
    return run * n_streams + (within - run)


@sized_kernel(**JIT)
def gather(values, order):
    """``values[order]`` in parallel (each thread writes its own slice of the output)."""
    out = np.empty(order.shape[0], dtype=values.dtype)
    for j in prange(order.shape[0]):
        out[j] = values[order[j]]
    return out


@sized_kernel(**JIT)
def block_layout(users, items, values, user_row, item_row, user_stratum, item_stratum, n_strata):
    """Ratings laid out block by block for training, in model rows.

    ``users``/``items`` are container indices, relabelled on the fly by ``user_row``/``item_row``
    (rows are numbered in index order inside each stratum); ``user_stratum``/``item_stratum``
    give each row's stratum. Block ``a * n_strata + b`` holds the ratings of user stratum a and
    item stratum b, sorted by (user, item) row and then interleaved in STREAMS runs. Ratings
    already in (user, item) index order are then in row order inside each block, so one stable
    bucketing by block is all it takes.
    Returns the rows, values and the int64 block offsets (n_strata² + 1).
    """
    n = users.shape[0]
    out_users = np.empty(n, dtype=np.int32)
    out_items = np.empty(n, dtype=np.int32)
    out_values = np.empty(n, dtype=values.dtype)
    offsets = block_layout_into(
        users, items, values, user_row, item_row, user_stratum, item_stratum, n_strata,
        out_users, out_items, out_values,
    )  # fmt: skip
    return out_users, out_items, out_values, offsets


@sized_kernel(**JIT)
def block_layout_into(
    users, items, values, user_row, item_row, user_stratum, item_stratum, n_strata,
    out_users, out_items, out_values,
):  # fmt: skip
    """``block_layout`` into given arrays (n each: the rows and the values); returns the block
    offsets. Lets the caller hand in numpy's buffers (huge pages, fewer page faults)."""
    n = users.shape[0]
    if sorted_by_user_item(users, items):
        order = np.empty(0, dtype=np.int64)  # the identity: rows already in (user, item) order
    else:
        rows_u = np.empty(n, dtype=np.int32)
        rows_i = np.empty(n, dtype=np.int32)
        for j in range(n):
            rows_u[j] = user_row[users[j]]
            rows_i[j] = item_row[items[j]]
        order, u_offsets = stable_bucket_order(rows_u, user_row.shape[0])
        sort_segments_by_item(order, u_offsets, rows_i)
    offsets = _bucket_by_block(
        order, users, items, values, user_row, item_row, user_stratum, item_stratum, n_strata,
        out_users, out_items, out_values,
    )  # fmt: skip
    _interleave_blocks(offsets, out_users, out_items, out_values)
    return offsets


def unordered_layout_into(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, user_row: np.ndarray,
    item_row: np.ndarray, user_stratum: np.ndarray, item_stratum: np.ndarray,
    user_starts: np.ndarray, item_starts: np.ndarray, out_users: np.ndarray,
    out_items: np.ndarray, out_values: np.ndarray,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """``block_layout_into`` for ratings in any order: one parallel scatter by block, then each
    block sorted by (user row, item row) in cache and interleaved (``_sort_blocks``).
    ``user_starts``/``item_starts`` are the strata's first rows (S + 1 each). Returns the block
    offsets and how many rows repeat a (user, item) pair: when that is not 0 the layout is not
    the one of the pairs' distinct ratings (resolve the duplicates, then lay them out again).

    With 4-byte values and strata small enough (``packs_records``), the scatter writes one
    8-byte record a rating (``_scatter_records``: a third of the write streams of three arrays)
    and each block's sort unpacks them into ``out_*`` (``_sort_record_blocks``)."""
    n_strata = user_starts.shape[0] - 1
    if packs_records(values, user_starts, item_starts):
        records = np.empty(users.shape[0], dtype=np.int64)  # numpy's buffer: huge pages
        offsets = _scatter_records(users, items, values.view(np.int32), user_row, item_row,
                                   user_stratum, item_stratum, user_starts, item_starts,
                                   records)  # fmt: skip
        repeats = _sort_record_blocks(offsets, user_starts, item_starts, records, out_users,
                                      out_items, out_values.view(np.int32))  # fmt: skip
        return offsets, int(repeats)
    offsets = _bucket_by_block(np.empty(0, dtype=np.int64), users, items, values, user_row,
                               item_row, user_stratum, item_stratum, n_strata, out_users,
                               out_items, out_values)  # fmt: skip
    repeats = _sort_blocks(offsets, user_starts, item_starts, out_users, out_items, out_values)
    return offsets, int(repeats)


# A packed record: the value's 32 bits (low word), the item row inside its stratum (bits 32-46)
# and the user row inside its stratum (bits 48-62). The scatter's tables hold a local row in
# their high 16 bits and the block part in their low 16 (int32: half the cache of int64 keys).
USER_LOCAL_ROWS = 1 << 15
ITEM_LOCAL_ROWS = 1 << 15
RECORD_BLOCKS = 1 << 16


def packs_records(values: np.ndarray, user_starts: np.ndarray, item_starts: np.ndarray) -> bool:
    """Whether a rating fits one packed record: 4-byte contiguous values, no user stratum over
    USER_LOCAL_ROWS rows nor item stratum over ITEM_LOCAL_ROWS, at most RECORD_BLOCKS blocks."""
    return (
        values.dtype.itemsize == 4
        and values.flags.c_contiguous
        and (user_starts.shape[0] - 1) ** 2 <= RECORD_BLOCKS
        and int(np.diff(user_starts).max(initial=0)) <= USER_LOCAL_ROWS
        and int(np.diff(item_starts).max(initial=0)) <= ITEM_LOCAL_ROWS
    )


@sized_kernel(**JIT)
def _scatter_records(
    users, items, value_bits, user_row, item_row, user_stratum, item_stratum, user_starts,
    item_starts, records,
):  # fmt: skip
    """``_bucket_by_block`` of the ratings in their own order, each written as one packed
    record (``value_bits``: the values' 32 bits as int32) into ``records``. Returns the block
    offsets."""
    n = users.shape[0]
    n_strata = user_starts.shape[0] - 1
    n_blocks = n_strata * n_strata
    low = (np.int64(1) << 32) - 1
    # by index: the local row (high 16 bits) and the first block of its stratum row (users)
    # or its block column (items): one lookup a side, for the count and for the scatter
    user_key = np.empty(user_row.shape[0], dtype=np.int32)
    for u in range(user_row.shape[0]):
        r = user_row[u]
        s = user_stratum[r]
        user_key[u] = ((r - user_starts[s]) << 16) | (s * n_strata)
    item_key = np.empty(item_row.shape[0], dtype=np.int32)
    for i in range(item_row.shape[0]):
        r = item_row[i]
        s = item_stratum[r]
        item_key[i] = ((r - item_starts[s]) << 16) | s
    counts = np.zeros((N_CHUNKS, n_blocks), dtype=np.int64)
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            counts[c, (user_key[users[j]] & 0xFFFF) + (item_key[items[j]] & 0xFFFF)] += 1
    offsets, cursor = chunk_cursors(counts)
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            uk, ik = user_key[users[j]], item_key[items[j]]
            b = (uk & 0xFFFF) + (ik & 0xFFFF)
            dest = cursor[c, b]
            cursor[c, b] = dest + 1
            rows = np.int64((uk & np.int32(-65536)) | (ik >> 16))  # both local rows
            records[dest] = (rows << 32) | (np.int64(value_bits[j]) & low)
    return offsets


@sized_kernel(**JIT)
def _sort_record_blocks(offsets, user_starts, item_starts, records, users, items, value_bits):
    """``_sort_blocks`` of packed records: each block's records sorted by (user row, item row),
    equal pairs in their order, interleaved, and unpacked into ``users``, ``items`` and
    ``value_bits``. Returns how many rows repeat the pair before them."""
    n_strata = user_starts.shape[0] - 1
    repeats = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    for b in prange(offsets.shape[0] - 1):
        lo = offsets[b]
        m = offsets[b + 1] - lo
        if m > 0:
            a, c = b // n_strata, b % n_strata
            repeats[b] = _sort_one_record_block(
                lo, m, user_starts[a], user_starts[a + 1] - user_starts[a], item_starts[c],
                item_starts[c + 1] - item_starts[c], records, users, items, value_bits,
            )  # fmt: skip
    return repeats.sum()


@njit(**JIT)
def _sort_one_record_block(lo, m, u0, nu, i0, ni, records, users, items, value_bits):
    """Block ``lo:lo + m`` of packed records (nu user rows from u0, ni item rows from i0): a
    stable counting sort by item into a copy, then one by user into another, then every record
    unpacked in training order (writing the three arrays in order rather than at scattered
    places: about a third less CPU; the records themselves are not written back). Returns the
    number of rows that repeat the pair before them."""
    count = np.zeros(ni + 1, dtype=np.int32)  # int32: both tables stay in L1
    cursor = np.zeros(nu + 1, dtype=np.int32)
    for j in range(lo, lo + m):  # both histograms in one pass
        rec = records[j]
        count[((rec >> 32) & 0xFFFF) + 1] += 1
        cursor[((rec >> 48) & 0x7FFF) + 1] += 1
    for k in range(1, ni + 1):
        count[k] += count[k - 1]
    by_item = np.empty(m, dtype=np.int64)
    for j in range(lo, lo + m):
        rec = records[j]
        k = (rec >> 32) & 0xFFFF
        p = count[k]
        count[k] = p + 1
        by_item[p] = rec
    for k in range(1, nu + 1):
        cursor[k] += cursor[k - 1]
    ranked = np.empty(m, dtype=np.int64)  # in (user, item) order, in cache
    for j in range(m):
        rec = by_item[j]
        k = (rec >> 48) & 0x7FFF
        p = cursor[k]
        cursor[k] = p + 1
        ranked[p] = rec
    repeats = 0
    for j in range(1, m):  # a repeated pair: the same (user, item) bits as the record before
        repeats += (ranked[j] >> 32) == (ranked[j - 1] >> 32)
    # unpacked in training order (three sequential write streams), each place read from its
    # rank: the inverse of ``interleaved_position``, STREAMS read streams through ``ranked``
    run = m // STREAMS
    for w in range(run):
        for s in range(STREAMS):
            _unpack(ranked[s * run + w], lo + w * STREAMS + s, u0, i0, users, items, value_bits)
    for p in range(run * STREAMS, m):  # the last run's extra ratings: place = rank
        _unpack(ranked[p], lo + p, u0, i0, users, items, value_bits)
    return repeats


@njit(**JIT_INLINE)
def _unpack(rec, dest, u0, i0, users, items, value_bits):
    """A packed record's user row, item row and value bits written at ``dest``."""
    users[dest] = np.int32(u0 + ((rec >> 48) & 0x7FFF))
    items[dest] = np.int32(i0 + ((rec >> 32) & 0xFFFF))
    value_bits[dest] = np.int32(rec & ((np.int64(1) << 32) - 1))


@sized_kernel(**JIT)
def _bucket_by_block(
    order, users, items, values, user_row, item_row, user_stratum, item_stratum, n_strata,
    out_users, out_items, out_values,
):  # fmt: skip
    """Stable bucketing of ``order`` (empty: the rows in their own order) by block, in N_CHUNKS
    parallel pieces: each piece counts and then writes its own ratings, at positions that make
    the result the serial one. Writes ``out_*`` (in model rows); returns the block offsets."""
    n = users.shape[0]
    identity = order.shape[0] == 0
    n_blocks = n_strata * n_strata
    # by index: the model row (high 32 bits) and the first block of its stratum row (users) or
    # its block column (items), one lookup a side per rating
    user_key = np.empty(user_row.shape[0], dtype=np.int64)
    for u in range(user_row.shape[0]):
        r = user_row[u]
        user_key[u] = (np.int64(r) << 32) | (np.int64(user_stratum[r]) * n_strata)
    item_key = np.empty(item_row.shape[0], dtype=np.int64)
    for i in range(item_row.shape[0]):
        r = item_row[i]
        item_key[i] = (np.int64(r) << 32) | np.int64(item_stratum[r])
    low = (np.int64(1) << 32) - 1
    # the counting pass needs the blocks alone: int32 tables, half the cache of the keys
    user_block = np.empty(user_row.shape[0], dtype=np.int32)
    for u in range(user_row.shape[0]):
        user_block[u] = np.int32(user_key[u] & low)
    item_block = np.empty(item_row.shape[0], dtype=np.int32)
    for i in range(item_row.shape[0]):
        item_block[i] = np.int32(item_key[i] & low)
    counts = np.zeros((N_CHUNKS, n_blocks), dtype=np.int64)
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            row = j if identity else order[j]
            counts[c, user_block[users[row]] + item_block[items[row]]] += 1
    offsets, cursor = chunk_cursors(counts)
    for c in prange(N_CHUNKS):
        for j in range(c * n // N_CHUNKS, (c + 1) * n // N_CHUNKS):
            row = j if identity else order[j]
            uk, ik = user_key[users[row]], item_key[items[row]]
            b = (uk & low) + (ik & low)
            dest = cursor[c, b]
            cursor[c, b] = dest + 1
            out_users[dest] = np.int32(uk >> 32)
            out_items[dest] = np.int32(ik >> 32)
            out_values[dest] = values[row]
    return offsets


@sized_kernel(**JIT)
def _interleave_blocks(offsets, users, items, values):
    """Each block's ratings, written in (user, item) order, rearranged in place into its STREAMS
    interleaved runs (``interleaved_position``), one block per thread through a copy that stays
    in cache. Interleaving while scattering instead writes every cache line of a block once per
    run: three times the memory traffic."""
    for b in prange(offsets.shape[0] - 1):
        lo = offsets[b]
        m = offsets[b + 1] - lo
        if m >= STREAMS:  # a shorter block is its own interleaving
            _interleave_one(lo, m, users, items, values)


@sized_kernel(**JIT)
def _sort_blocks(offsets, user_starts, item_starts, users, items, values):
    """Each block's ratings (in model rows) sorted in place by (user row, item row), equal pairs
    in their order, and interleaved into its STREAMS runs: one block per thread, in cache.
    Returns how many rows repeat the pair of the row before them in sorted order."""
    n_strata = user_starts.shape[0] - 1
    repeats = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    for b in prange(offsets.shape[0] - 1):
        lo = offsets[b]
        m = offsets[b + 1] - lo
        if m > 0:
            a, c = b // n_strata, b % n_strata
            repeats[b] = _sort_one_block(
                lo, m, user_starts[a], user_starts[a + 1], item_starts[c], item_starts[c + 1],
                users, items, values,
            )  # fmt: skip
    return repeats.sum()


@njit(**JIT)
def _sort_one_block(lo, m, u0, u1, i0, i1, users, items, values):
    """Block ``lo:lo + m`` (users in rows u0..u1-1, items in i0..i1-1): a stable counting sort
    by item into a copy, then one by user written straight to each rating's interleaved place.
    Returns the number of rows that repeat the pair before them."""
    count = np.zeros(i1 - i0 + 1, dtype=np.int64)
    cursor = np.zeros(u1 - u0 + 1, dtype=np.int64)
    for j in range(lo, lo + m):  # both histograms in one pass
        count[items[j] - i0 + 1] += 1
        cursor[users[j] - u0 + 1] += 1
    for k in range(1, i1 - i0 + 1):
        count[k] += count[k - 1]
    su = np.empty(m, dtype=np.int32)
    si = np.empty(m, dtype=np.int32)
    sv = np.empty(m, dtype=values.dtype)
    for j in range(lo, lo + m):
        p = count[items[j] - i0]
        count[items[j] - i0] = p + 1
        su[p], si[p], sv[p] = users[j], items[j], values[j]
    for k in range(1, u1 - u0 + 1):
        cursor[k] += cursor[k - 1]
    last = np.full(u1 - u0, -1, dtype=np.int32)  # the item each user's run ends with so far
    repeats = 0
    for j in range(m):
        k = su[j] - u0
        p = cursor[k]
        cursor[k] = p + 1
        if last[k] == si[j]:
            repeats += 1
        last[k] = si[j]
        dest = lo + interleaved_position(p, m, STREAMS)
        users[dest], items[dest], values[dest] = su[j], si[j], sv[j]
    return repeats


@njit(**JIT)
def _interleave_one(lo, m, users, items, values):
    """Block ``lo:lo + m`` rearranged in place into its interleaved runs."""
    u = users[lo : lo + m].copy()
    i = items[lo : lo + m].copy()
    v = values[lo : lo + m].copy()
    for rank in range(m):
        dest = lo + interleaved_position(rank, m, STREAMS)
        users[dest] = u[rank]
        items[dest] = i[rank]
        values[dest] = v[rank]


@njit(**JIT)
def checksum(users, items, values):
    """A position-weighted checksum of rating triples, to tell whether two sets are the same."""
    h = np.uint64(1469598103934665603)
    for j in range(users.shape[0]):
        x = np.uint64(users[j]) * np.uint64(1000003) + np.uint64(items[j])
        x = x * np.uint64(31) + np.uint64(np.int64(values[j] * 1024))
        h = (h ^ x) * np.uint64(1099511628211)
    return h
