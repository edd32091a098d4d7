"""One place for Numba's compile options, shared by every kernel module, and the size dispatch
of the setup kernels.

``FASTMATH`` is a chosen set of LLVM flags rather than ``True``: leaving out ``nnan`` and ``ninf``
keeps ``np.isfinite`` checks working, and leaving out ``reassoc`` keeps the order of every sum as
written in the source, so a kernel gives the same bits whether it was just compiled or loaded
from the cache.

Compile time: a ``parallel=True`` kernel costs about twice the compile of the same kernel run
serially (every ``prange`` loop becomes a gufunc of its own). The setup kernels (codes, orders,
layouts, lookups, checksums) run in milliseconds below a million ratings, so ``sized_kernel``
compiles them two ways, each lazily on its first call: serially for inputs under
``SERIAL_BELOW`` elements, in parallel above. A run compiles only the variant its data needs.
Both variants give the same result (every setup kernel's output depends on its input only).

The training kernels unroll their loops over a row for the common factor widths, each width a
body of its own, and compile those bodies per width in the same way: ``width_kernel`` makes one
variant per chunk count (W = 8 float32 or 4 float64 lanes a chunk), lazily on its first call,
whose scope holds that count as the constant ``CHUNKS`` (0 for the general body, which takes the
width at run time). A run compiles the body of its own width only.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

FASTMATH = {"nsz", "arcp", "contract", "afn"}

JIT = {"cache": True, "nogil": True, "fastmath": FASTMATH}

# For small helpers called from inside a kernel's hot loop: inlined in Numba's IR, so the call
# costs nothing (LLVM does not always inline a separately compiled callee).
JIT_INLINE = {**JIT, "inline": "always"}

# Elements of the largest array argument from which a sized kernel runs its parallel variant.
# Below it the serial variant's run time is a few milliseconds, and its compile half as long.
SERIAL_BELOW = 1 << 20

_SERIAL_SUFFIX = "__serial"  # the serial variant's qualname: a cache file of its own


class _Variants:
    """A kernel compiled as several Numba dispatchers, each a copy of ``py_func`` made lazily
    under a qualname of its own (so a cache file of its own) with ``constants`` in its scope;
    its callees of the same kind are swapped for their variant of the same key."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self._options = options
        self._variants: dict[Any, Any] = {}
        functools.update_wrapper(self, py_func)

    def _suffix(self, key: Any) -> str:
        raise NotImplementedError

    def _compile_options(self, key: Any) -> dict[str, Any]:
        return self._options

    def _constants(self, key: Any) -> dict[str, Any]:
        return {}

    def variant(self, key: Any) -> Any:
        """The Numba dispatcher of one variant (created on first use, compiled on first call)."""
        key = self._own_key(key)
        found = self._variants.get(key)
        if found is None:
            found = self._variants[key] = self._make(key)
        return found

    def _own_key(self, key: Any) -> Any:
        return key

    def _make(self, key: Any) -> Any:
        code = self.py_func.__code__
        scope = dict(self.py_func.__globals__)
        for name in code.co_names:  # callees of the same kind: their variant of the same key
            callee = scope.get(name)
            if isinstance(callee, type(self)):
                scope[name] = callee.variant(key)
        scope.update(self._constants(key))
        func = types.FunctionType(
            code, scope, self.py_func.__name__, self.py_func.__defaults__, self.py_func.__closure__
        )
        func.__qualname__ = self.py_func.__qualname__ + self._suffix(key)
        func.__module__ = self.py_func.__module__
        func.__doc__ = self.py_func.__doc__
        return njit(**self._compile_options(key))(func)

    @property
    def variants(self) -> dict[Any, Any]:
        """The variants made so far, by key (a variant is made on its first call)."""
        return dict(self._variants)

    @property
    def signatures(self) -> list:
        """The signatures compiled so far, over every variant."""
        return [sig for d in self._variants.values() for sig in d.signatures]


class SizedKernel(_Variants):
    """A kernel compiled serially for small inputs and in parallel for large ones, each variant
    lazily, on its first call (see the module's docstring). Calls from another sized kernel of
    the same module go to the variant of the same kind."""

    def _suffix(self, key: bool) -> str:
        return "" if key else _SERIAL_SUFFIX

    def _compile_options(self, key: bool) -> dict[str, Any]:
        return {"parallel": key, **self._options}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
        size = max((a.size for a in arrays), default=0)
        return self.variant(size >= SERIAL_BELOW)(*args, **kwargs)


def sized_kernel(**options: Any) -> Callable[[Callable[..., Any]], SizedKernel]:
    """Decorator: a setup kernel compiled serially below ``SERIAL_BELOW`` elements and with
    ``parallel=True`` above (``options`` are Numba's others, e.g. ``**JIT``)."""

    def wrap(py_func: Callable[..., Any]) -> SizedKernel:
        return SizedKernel(py_func, options)

    return wrap


def chunks_of(width: int, dtype: Any) -> tuple[int, bool]:
    """A row of ``width`` factors of ``dtype``: its whole SIMD chunks and whether columns are
    left over (``_kernels.training.lanes_of``: 8 float32 or 4 float64 lanes a chunk)."""
    lanes = 8 if np.dtype(dtype).itemsize == 4 else 4
    return width // lanes, width % lanes != 0


class WidthKernel(_Variants):
    """A training kernel compiled once per factor width that has a body of its own (``unrolled``
    chunk counts) and once for every other width, each lazily, on its first call (see the
    module's docstring). The variant's scope holds ``CHUNKS``: the count, or 0 for the general
    body. The width is read from the argument named ``P`` (the user factors)."""

    def __init__(
        self, py_func: Callable[..., Any], options: dict[str, Any], unrolled: frozenset[int]
    ) -> None:
        super().__init__(py_func, options)
        self.unrolled = unrolled
        self._pending: dict[int, Callable[[], None]] = {}
        self._at = list(inspect.signature(py_func).parameters).index("P")

    def _own_key(self, key: int) -> int:
        return key if key in self.unrolled else 0

    def _suffix(self, key: int) -> str:
        return f"__{key}" if key else "__any"

    def _constants(self, key: int) -> dict[str, Any]:
        return {"CHUNKS": key}

    def key(self, width: int, dtype: Any) -> int:
        """The variant a row of ``width`` factors of ``dtype`` runs: its chunk count, or 0."""
        n_chunks, has_rest = chunks_of(width, dtype)
        return 0 if has_rest else self._own_key(n_chunks)

    def for_width(self, width: int, dtype: Any) -> Any:
        """The dispatcher of the variant for rows of ``width`` factors of ``dtype``."""
        return self.variant(self.key(width, dtype))

    def expect(self, key: int, wait: Callable[[], None]) -> None:
        """Have the first call of variant ``key`` run ``wait`` first: another process is filling
        Numba's cache with it (``fastmf.cli._prefill``), and the call then loads it."""
        self._pending[self._own_key(key)] = wait

    def __call__(self, *args: Any) -> Any:
        P = args[self._at]
        key = self.key(P.shape[1], P.dtype)
        wait = self._pending.pop(key, None)
        if wait is not None:
            wait()
        return self.variant(key)(*args)


def width_kernel(
    unrolled: frozenset[int], **options: Any
) -> Callable[[Callable[..., Any]], WidthKernel]:
    """Decorator: a training kernel compiled per chunk count in ``unrolled`` and once for the
    other widths, each variant on its first call (``options`` are Numba's, e.g. ``**JIT``)."""

    def wrap(py_func: Callable[..., Any]) -> WidthKernel:
        return WidthKernel(py_func, options, unrolled)

    return wrap
