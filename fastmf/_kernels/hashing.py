"""Fast 64-bit checksums of arrays and of rating sets, to tell whether two data sets are the same.

Not cryptographic: it detects change (a different rating, a different id, a flipped byte in a
cache), not an adversary. One multiply per 8-byte word, summed in parallel blocks whose sum does
not depend on their order, so it runs at memory speed and gives the same value with any number of
threads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit, prange

from fastmf._kernels.jit import JIT, JIT_INLINE, sized_kernel
from fastmf._threads import KERNEL_LOCK

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / the golden ratio: the position keys
_M1 = np.uint64(0xFF51AFD7ED558CCD)  # MurmurHash3's finalizer constants
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S = np.uint64(33)


@njit(**JIT_INLINE)
def _word_term(word, key):
    """One word's term of the checksum: a bijection of ``word`` keyed by ``key``, its position
    times _GOLDEN."""
    x = (word ^ key) * _M1
    return x ^ (x >> _S)


@njit(**JIT_INLINE)
def _fmix(h):
    """MurmurHash3's 64-bit finalizer: every input bit reaches every output bit."""
    h = h ^ (h >> _S)
    h = h * _M1
    h = h ^ (h >> _S)
    h = h * _M2
    return h ^ (h >> _S)


@njit(**JIT)
def _sum_terms(words, lo, hi):
    s = np.uint64(0)
    key = np.uint64(lo + 1) * _GOLDEN
    for i in range(lo, hi):
        s += _word_term(words[i], key)
        key += _GOLDEN  # (i + 2) * _GOLDEN, without a multiply
    return s


@sized_kernel(**JIT)
def hash_words(words, tail, n_bytes):
    """A 64-bit checksum of a column's bytes: ``words`` (uint64, its whole 8-byte words), ``tail``
    (the 0..7 bytes left over, little-endian in a uint64) and ``n_bytes`` its length.

    The checksum is ``fmix(sum of term(w_i, (i + 1) G) + term(tail, (n + 1) G) + n_bytes M2)``
    over the words ``w_i`` (wrapping uint64 arithmetic, G = _GOLDEN), where ``term`` is a
    bijection of the word keyed by its position: changing any one word always changes the sum,
    a change of order or length changes it too, and one multiply per word keeps it at memory
    speed. The sum is the
    same in any order, so blocks of words are summed in parallel, each block into its own slot.
    Reads ``words`` only.
    """
    n = words.shape[0]
    block = 1 << 16
    n_blocks = (n + block - 1) // block
    sums = np.zeros(n_blocks, dtype=np.uint64)
    for b in prange(n_blocks):
        sums[b] = _sum_terms(words, b * block, min(n, (b + 1) * block))
    s = _word_term(tail, np.uint64(n + 1) * _GOLDEN)
    for b in range(n_blocks):
        s += sums[b]
    return _fmix(s + np.uint64(n_bytes) * _M2)


def hash_bytes(a: np.ndarray) -> int:
    """The 64-bit checksum of an array's bytes in C order (dtype and shape not included)."""
    data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    n_words = data.size // 8
    words = data[: n_words * 8].view(np.uint64)
    words.flags.writeable = False  # one compiled signature, whether ``a`` was read-only or not
    tail = int.from_bytes(bytes(data[n_words * 8 :]), "little")
    with KERNEL_LOCK:
        return int(hash_words(words, np.uint64(tail), np.int64(data.size)))


def hash_array(values: np.ndarray) -> int:
    """A 64-bit hash of an array's dtype, shape and contents (strings and objects by value)."""
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind in "USO":
        arr = pd.util.hash_array(arr.ravel().astype(object), categorize=False).reshape(arr.shape)
        kind = "object"
    else:
        kind = arr.dtype.str
    header = np.frombuffer(f"{kind}{arr.shape}".encode(), dtype=np.uint8)
    return hash_bytes(np.array([hash_bytes(header), hash_bytes(arr)], dtype=np.uint64))


def hash_arrays(*arrays: np.ndarray) -> int:
    """One 64-bit hash of several arrays, in order."""
    return hash_bytes(np.array([hash_array(a) for a in arrays], dtype=np.uint64))


@sized_kernel(**JIT)
def rating_set_words(users, items, value_bits, user_index, item_index):
    """The order-free checksum of rating triples: ``fmix`` of the wrapping sum over ratings of
    a mix of (user, item, rating bits), each rating one word; blocks summed in parallel. With
    ``user_index``/``item_index`` not empty, the users and items are first relabelled by them
    (``user_index[users[j]]``), on the fly."""
    n = users.shape[0]
    block = 1 << 16
    n_blocks = (n + block - 1) // block
    relabel = user_index.shape[0] > 0
    sums = np.zeros(n_blocks, dtype=np.uint64)
    for b in prange(n_blocks):
        s = np.uint64(0)
        for j in range(b * block, min(n, (b + 1) * block)):
            u = user_index[users[j]] if relabel else users[j]
            i = item_index[items[j]] if relabel else items[j]
            pair = (np.uint64(np.uint32(u)) << np.uint64(32)) | np.uint64(np.uint32(i))
            s += _fmix(pair ^ _word_term(np.uint64(value_bits[j]), _GOLDEN))
        sums[b] = s
    total = np.uint64(n) * _M2
    for b in range(n_blocks):
        total += sums[b]
    return _fmix(total)


def hash_rating_set(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    relabel: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """A 64-bit hash of the multiset of (user, item, rating) triples (int32, int32, float32):
    the same for the triples in any order, changed by any change of a triple. ``relabel``
    (two int32 arrays) hashes the triples (``relabel[0][user]``, ``relabel[1][item]``, rating)
    instead, without making them."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    none = np.empty(0, dtype=np.int32)
    user_index, item_index = (none, none) if relabel is None else relabel
    with KERNEL_LOCK:
        return int(rating_set_words(users, items, bits, user_index, item_index))
