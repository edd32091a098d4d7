"""One rule for ``random_state`` everywhere fastmf draws at random."""

from __future__ import annotations

import numbers

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
