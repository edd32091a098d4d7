"""How long the draw of a fresh fit's factors takes (``fastmf._random.fill_normal``).

```
python -m benchmarks.draw_speed                         # (221k, 64) float32: the 25M twin's P and Q
python -m benchmarks.draw_speed --against 2dacf77       # and the kernel of that revision
python -m benchmarks.draw_speed --dtype float64 --reps 7
```

Each figure is the fastest of ``--reps`` calls (wall and CPU seconds, and CPU nanoseconds an
element) on 2 threads and on 1, into an array already written ("warm") and into a fresh
``np.empty`` one ("fresh", whose pages the draw touches first, as a fit's does). ``--against``
loads ``fastmf/_kernels/normal.py`` of a git revision as a module of its own, checks that it
draws the same bits, and times it in turn with this one, in the same process.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from fastmf._kernels import normal as nk
from fastmf._threads import numba_threads

SHAPE = (221_000, 64)  # the 25M twin's 162k users and 59k items, 64 factors


def kernel_of(revision: str) -> ModuleType:
    """``fastmf/_kernels/normal.py`` of a git revision, loaded as a module of its own."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.check_output(
        ["git", "-C", str(root), "show", f"{revision}:fastmf/_kernels/normal.py"], text=True
    )
    path = Path(tempfile.mkdtemp()) / f"normal_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw(module: ModuleType, a: np.ndarray, threads: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one draw into ``a`` by ``module``'s kernel, as fill_normal does."""
    with numba_threads(threads):
        w, c = time.perf_counter(), time.process_time()
        flat = a.reshape(-1)
        module.normal_fill(flat, np.uint64(seed), np.int64(0), 0.1, module.KN, module.WN, module.FN)
        return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", help="a git revision whose kernel is timed too")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    dtype = np.dtype(args.dtype)
    kernels = {"this": nk}
    if args.against:
        kernels = {args.against: kernel_of(args.against), "this": nk}
    warm = np.ones(SHAPE, dtype)
    for name, module in kernels.items():  # compile, and check the bits
        draw(module, warm, 2, 0)
        if name != "this":
            mine = np.ones(SHAPE, dtype)
            draw(nk, mine, 2, 0)
            assert mine.tobytes() == warm.tobytes(), "the kernels draw different bits"
    n = warm.size
    for threads in (2, 1):
        for fresh in (False, True):
            best: dict[str, tuple[float, float]] = {}
            for rep in range(args.reps):
                for name, module in kernels.items():
                    a = np.empty(SHAPE, dtype) if fresh else warm
                    w, c = draw(module, a, threads, rep + 1)
                    bw, bc = best.get(name, (w, c))
                    best[name] = (min(w, bw), min(c, bc))
            cells = [f"{dtype.name} {SHAPE}, {threads} thread(s), {'fresh' if fresh else 'warm'}:"]
            for name, (w, c) in best.items():
                cells.append(f"{name} {w:.4f} s wall {c:.4f} s CPU ({c * 1e9 / n:.2f} ns)")
            print("  ".join(cells))


if __name__ == "__main__":
    main()
