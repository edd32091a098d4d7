"""What every peer shares: its context, memory, prediction, clocks for printed progress.

Every ``run_*`` function runs inside its own worker process (``benchmarks.compare.worker``) and
talks to the runner only through the :class:`Context`: ``ctx.epoch`` records a point of the
test-RMSE-against-time curve as soon as it is known (so a peer killed later still reports what it
reached) and the function returns the summary of the fit.

Protocol, the same for every library:
- ``prepare_seconds``: turning the split into the library's input (id maps, its data object).
- ``fit_seconds``: the library's training call for ``n_epochs`` epochs, without evaluation.
- the curve's time axis: prepare plus training time up to the end of each epoch; evaluating the
  test set after an epoch is not counted.
- final test RMSE and MAE: computed here from the model's parameters for every library, with
  predictions clipped to the training rating scale.
Each library keeps its documented learning rate and initialization; the factors, the epochs, the
L2 weight ``reg`` (per rating, on the factors) and the threads are shared.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.compare.data import Split


@dataclass
class Context:
    """What a peer sees: the split, the shared settings and a way to report progress."""

    split: Split
    n_factors: int
    n_epochs: int
    reg: float
    threads: int
    seed: int
    options: dict
    emit: Callable[..., None]
    curve: list = field(default_factory=list)
    baseline_rss_gb: float | None = None

    def imported(self) -> None:
        """Mark the resident memory once the library is imported: the fit's own memory is
        measured above it (the split is loaded already)."""
        self.baseline_rss_gb = rss_gb()

    @property
    def rating_range(self) -> tuple[float, float]:
        return float(self.split.meta["rating_min"]), float(self.split.meta["rating_max"])

    def evaluate(self, pred: np.ndarray) -> tuple[float, float]:
        """Test RMSE and MAE of ``pred`` (clipped to the training rating scale)."""
        lo, hi = self.rating_range
        err = np.clip(np.asarray(pred, dtype=np.float64), lo, hi) - self.split.test["rating"]
        return float(np.sqrt(np.mean(err * err))), float(np.mean(np.abs(err)))

    def epoch(self, epoch: int, seconds: float, rmse: float, mae: float | None = None) -> None:
        """Record that after ``epoch`` (1-based) at ``seconds`` the test RMSE was ``rmse``."""
        point = {"epoch": int(epoch), "seconds": float(seconds), "test_rmse": float(rmse)}
        if mae is not None:
            point["test_mae"] = float(mae)
        self.curve.append(point)
        self.emit("epoch", **point)

    def option(self, name: str, default):
        """A per-library setting given with ``--set LIBRARY.NAME=VALUE``, else ``default``."""
        value = self.options.get(name, default)
        return type(default)(value) if default is not None and value is not None else value


def rss_gb() -> float:
    """Resident memory of this process now, in GiB (NaN where /proc is absent)."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError):
        return float("nan")


def biased_predict(mu, bu, bi, P, Q, users, items) -> np.ndarray:
    """mu + bu[u] + bi[i] + P[u].Q[i] for each test pair, in float64, a million rows at a time."""
    out = np.empty(users.shape[0], dtype=np.float64)
    for lo in range(0, users.shape[0], 1 << 20):
        u, i = users[lo : lo + (1 << 20)], items[lo : lo + (1 << 20)]
        dot = np.einsum("nk,nk->n", P[u].astype(np.float64), Q[i].astype(np.float64))
        out[lo : lo + (1 << 20)] = (
            dot + mu + (bu[u] if bu is not None else 0.0) + (bi[i] if bi is not None else 0.0)
        )
    return out


class LineClock:
    """Capture what is written to a file descriptor (C or Python), stamping each line's time.

    ``lines`` holds ``(seconds since start, text)``. Used for libraries that print per-epoch
    progress from compiled code (LIBMF) or from Python (Surprise).
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self.lines: list[tuple[float, str]] = []

    def __enter__(self) -> LineClock:  # noqa: PYI034
        sys.stdout.flush()
        self._saved = os.dup(self.fd)
        self._read, write = os.pipe()
        os.dup2(write, self.fd)
        os.close(write)
        self.start = time.perf_counter()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            now = time.perf_counter() - self.start
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append((now, line.decode(errors="replace")))
        if buf:
            self.lines.append((time.perf_counter() - self.start, buf.decode(errors="replace")))

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        os.dup2(self._saved, self.fd)
        os.close(self._saved)
        self._thread.join(timeout=10)
        os.close(self._read)


class PrintClock:
    """Swap ``sys.stdout`` for a writer that stamps each line with the time it was printed.

    For libraries that print progress from Python while holding the GIL (Surprise), where a
    reader thread (:class:`LineClock`) would only see the lines late.
    """

    def __enter__(self) -> PrintClock:  # noqa: PYI034
        self.lines: list[tuple[float, str]] = []
        self._saved = sys.stdout
        sys.stdout = self
        self.start = time.perf_counter()
        return self

    def write(self, text: str) -> int:
        now = time.perf_counter() - self.start
        for line in text.splitlines():
            if line.strip():
                self.lines.append((now, line))
        return len(text)

    def flush(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        sys.stdout = self._saved


class Watched:
    """Run ``fn(*args)`` in a daemon thread, timing it, so the caller can stop waiting."""

    def __init__(self, fn, *args) -> None:
        self.seconds = float("nan")

        def target() -> None:
            t0 = time.perf_counter()
            fn(*args)
            self.seconds = time.perf_counter() - t0

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """True once the call has returned."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def inner_ids(mapping: dict, n: int) -> np.ndarray:
    lookup = np.full(n, -1, dtype=np.int64)
    raw = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    inner = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    lookup[raw] = inner
    return lookup
