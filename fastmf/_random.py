"""One rule for ``random_state`` everywhere fastmf draws at random, and the parallel draw of a
fresh fit's factors."""

from __future__ import annotations

import numbers

import numpy as np

from fastmf._kernels import normal as nk
from fastmf._threads import KERNEL_LOCK, numba_threads, threads_for


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


def fill_normal(
    rng: np.random.Generator, arrays: list[np.ndarray], std: float, n_threads: int
) -> None:
    """Fill each C-contiguous float array of ``arrays`` with draws from N(0, std²), in place.

    One word drawn from ``rng`` seeds a counter-based draw (``fastmf._kernels.normal``) over
    the arrays' elements laid end to end, each element's value a function of the seed and its
    index alone, drawn on ``n_threads`` threads (at most Numba's): the bits never depend on
    ``n_threads``, and ``rng`` is always advanced by the same one word."""
    for a in arrays:
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"fill_normal fills float32 or float64 arrays, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(
                f"fill_normal fills C-contiguous arrays in place, got strides {a.strides}: "
                f"pass np.ascontiguousarray(a)"
            )
    seed = np.uint64(rng.integers(0, 2**64, dtype=np.uint64))
    first = 0
    with KERNEL_LOCK, numba_threads(threads_for(n_threads)):
        for a in arrays:
            flat = a.reshape(-1)
            nk.normal_fill(flat, seed, np.int64(first), float(std), nk.KN, nk.WN, nk.FN)
            first += flat.size
