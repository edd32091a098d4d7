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
"""

from __future__ import annotations

import functools
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


class SizedKernel:
    """A kernel compiled serially for small inputs and in parallel for large ones, each variant
    lazily, on its first call (see the module's docstring). Calls from another sized kernel of
    the same module go to the variant of the same kind."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self._options = options
        self._variants: dict[bool, Any] = {}
        functools.update_wrapper(self, py_func)

    def variant(self, parallel: bool) -> Any:
        """The Numba dispatcher of one variant (created on first use, compiled on first call)."""
        found = self._variants.get(parallel)
        if found is None:
            found = self._variants[parallel] = self._make(parallel)
        return found

    def _make(self, parallel: bool) -> Any:
        code = self.py_func.__code__
        scope = dict(self.py_func.__globals__)
        for name in code.co_names:  # callees that are sized kernels: the same kind of variant
            callee = scope.get(name)
            if isinstance(callee, SizedKernel):
                scope[name] = callee.variant(parallel)
        func = types.FunctionType(
            code, scope, self.py_func.__name__, self.py_func.__defaults__, self.py_func.__closure__
        )
        func.__qualname__ = self.py_func.__qualname__ + ("" if parallel else _SERIAL_SUFFIX)
        func.__module__ = self.py_func.__module__
        func.__doc__ = self.py_func.__doc__
        return njit(parallel=parallel, **self._options)(func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
        size = max((a.size for a in arrays), default=0)
        return self.variant(size >= SERIAL_BELOW)(*args, **kwargs)

    @property
    def signatures(self) -> list:
        """The signatures compiled so far, over both variants."""
        return [sig for d in self._variants.values() for sig in d.signatures]


def sized_kernel(**options: Any) -> Callable[[Callable[..., Any]], SizedKernel]:
    """Decorator: a setup kernel compiled serially below ``SERIAL_BELOW`` elements and with
    ``parallel=True`` above (``options`` are Numba's others, e.g. ``**JIT``)."""

    def wrap(py_func: Callable[..., Any]) -> SizedKernel:
        return SizedKernel(py_func, options)

    return wrap
