"""One rule for ``random_state`` everywhere fastmf draws at random, and the parallel draw of a
fresh fit's factors."""

from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def check_random_state(random_state: object, *, allow_generator: bool = True) -> None:
    """Refuse what cannot seed a draw: ``random_state`` is None, an int >= 0, a
    ``numpy.random.SeedSequence`` or (when ``allow_generator``) a ``numpy.random.Generator``."""
    kinds: tuple[type, ...] = (numbers.Integral, np.random.SeedSequence)
    if allow_generator:
        kinds += (np.random.Generator,)
    if random_state is None or (
        isinstance(random_state, kinds) and not isinstance(random_state, (bool, np.bool_))
    ):
        if isinstance(random_state, numbers.Integral) and random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return
    also = ", a numpy.random.Generator" if allow_generator else ""
    raise TypeError(
        f"random_state must be None, an int, a numpy.random.SeedSequence{also}; got "
        f"{type(random_state).__name__}"
    )


def as_generator(random_state: object, *, allow_generator: bool = True) -> np.random.Generator:
    """The generator ``random_state`` names (a Generator is used as it is, not copied)."""
    check_random_state(random_state, allow_generator=allow_generator)
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)  # type: ignore[arg-type]


DRAW_CHUNK = 1 << 16
"""Elements one child generator draws in ``fill_normal``: fixed, never the thread count, so
the draw's bits never depend on it (256 kB of float32: the chunk is scaled while in cache)."""

SERIAL_DRAW_BELOW = 8  # chunks: fewer are drawn in the calling thread (a pool costs more)


def fill_normal(
    rng: np.random.Generator, arrays: list[np.ndarray], std: float, n_threads: int
) -> None:
    """Fill each C-contiguous float array of ``arrays`` with draws from N(0, std²), in place.

    The arrays are cut, one after the other, into chunks of ``DRAW_CHUNK`` elements; chunk k is
    drawn by a generator of its own (PCG64 from child k of a SeedSequence seeded by four words
    drawn from ``rng``) and scaled in the same step. The chunks are shared out to ``n_threads``
    threads (numpy's fills release the GIL), so the bits depend on ``rng``'s state alone, never
    on ``n_threads``, and ``rng`` is always advanced by the same four words."""
    for a in arrays:
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"fill_normal fills float32 or float64 arrays, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(
                f"fill_normal fills C-contiguous arrays in place, got strides {a.strides}: "
                f"pass np.ascontiguousarray(a)"
            )
    entropy = rng.integers(0, 2**63, size=4, dtype=np.int64)
    flats = [a.reshape(-1) for a in arrays]
    pieces = [(flat, lo) for flat in flats for lo in range(0, flat.size, DRAW_CHUNK)]
    seeds = np.random.SeedSequence([int(x) for x in entropy]).spawn(len(pieces))

    def draw(k: int) -> None:
        flat, lo = pieces[k]
        out = flat[lo : lo + DRAW_CHUNK]
        np.random.Generator(np.random.PCG64(seeds[k])).standard_normal(dtype=out.dtype, out=out)
        out *= out.dtype.type(std)

    if n_threads <= 1 or len(pieces) < SERIAL_DRAW_BELOW:
        for k in range(len(pieces)):
            draw(k)
        return
    with ThreadPoolExecutor(max_workers=min(n_threads, len(pieces))) as pool:
        for _ in pool.map(draw, range(len(pieces))):
            pass  # re-raises the first exception of a chunk, if any
