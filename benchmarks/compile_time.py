"""Numba compile time of a first run, per kernel group, cold (empty cache) and warm (cache filled).

Each run is a fresh process with a Numba cache of its own, running ``fastmf train`` (by default
``--n-epochs 2``: the README's first command, shortened). Every top-level compile (a kernel
called from Python, with the callees it compiles inside it) is timed in CPU seconds of the
compiling thread and summed per group: the kernel's module (``sorting``, ``ids``, ``hashing``,
``training``, ...). The warm run should compile nothing: a kernel listed there missed the cache.
A cold ``fastmf train`` compiles its epoch kernel in a child process (``fastmf.cli._prefill``):
that kernel is then a load from the cache here, and the child's CPU seconds are counted apart.

```
python -m benchmarks.compile_time                          # train --n-epochs 2
python -m benchmarks.compile_time --kernels                # and every kernel's own figure
python -m benchmarks.compile_time --no-child               # every compile in the process
python -m benchmarks.compile_time -- --optimizer adam --batch-size 1024 --n-epochs 2
```
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# Runs in the child: times every top-level Dispatcher.compile, then runs the command line.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from numba.core.dispatcher import Dispatcher

    records, depth = [], [0]
    original = Dispatcher.compile

    def compile(self, sig):
        depth[0] += 1
        hits = sum(self._cache_hits.values())
        t0 = time.thread_time()
        try:
            return original(self, sig)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                name = self.py_func.__module__ + "." + self.py_func.__qualname__
                loaded = sum(self._cache_hits.values()) > hits
                records.append((name, str(sig), time.thread_time() - t0, loaded))

    Dispatcher.compile = compile
    t0 = time.perf_counter()
    from fastmf.cli import main

    rc = main(sys.argv[2:])
    wall = time.perf_counter() - t0
    with open(sys.argv[1], "w") as f:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the compiling child, reaped
        json.dump({"rc": rc, "wall": wall, "cpu": time.process_time(), "compiles": records,
                   "child_cpu": children.ru_utime + children.ru_stime}, f)
    """
)


def run(cache: str, argv: list[str], child: bool = True) -> dict:
    """One ``fastmf`` run in a fresh process with ``cache`` as Numba's cache; its timings.
    ``child=False`` keeps every compile in the process (``FASTMF_COMPILE_CHILD=0``)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "FASTMF_COMPILE_CHILD": "1" if child else "0"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, path, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    process_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"fastmf {' '.join(argv)} failed:\n{proc.stderr}")
    with open(path) as f:
        result = json.load(f)
    os.unlink(path)
    result["process_wall"] = process_wall
    return result


def groups(compiles: list) -> dict[str, tuple[int, float]]:
    """Compiles (or loads) per kernel module: (count, CPU seconds), largest first."""
    out: dict[str, list] = {}
    for name, _sig, seconds, *_ in compiles:
        parts = name.split(".")
        group = parts[-2] if len(parts) > 1 else name
        entry = out.setdefault(group, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    return dict(sorted(((k, (n, s)) for k, (n, s) in out.items()), key=lambda kv: -kv[1][1]))


def report(label: str, result: dict, kernels: bool) -> None:
    compiled = [r for r in result["compiles"] if not r[3]]
    loaded = [r for r in result["compiles"] if r[3]]
    print(
        f"{label}: {result['process_wall']:.1f} s wall for the process, "
        f"{result['cpu']:.1f} s CPU; {len(compiled)} compiles taking "
        f"{sum(r[2] for r in compiled):.1f} s CPU, {len(loaded)} loads from the cache taking "
        f"{sum(r[2] for r in loaded):.1f} s; {result.get('child_cpu', 0.0):.1f} s CPU in the "
        "compiling child"
    )
    for group, (n, seconds) in groups(compiled).items():
        print(f"  {group:<12} {n:>3} compiles  {seconds:6.2f} s")
    if kernels:
        for name, sig, seconds, _ in sorted(compiled, key=lambda r: -r[2]):
            print(f"    {seconds:6.2f} s  {name}{sig[:90]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", action="store_true", help="list every compile as well")
    parser.add_argument(
        "--no-child", action="store_true", help="compile the epoch kernel in the process too"
    )
    parser.add_argument("fastmf_args", nargs="*", help="the fastmf command line (after --)")
    args = parser.parse_args(argv)
    command = args.fastmf_args or ["--n-epochs", "2"]
    if command[0] not in {"train", "evaluate", "recommend", "similar", "diagnose"}:
        command = ["train", *command]
    print(f"fastmf {' '.join(command)}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="fastmf-compile-") as cache:
        report("cold", run(cache, command, not args.no_child), args.kernels)
        report("warm", run(cache, command, not args.no_child), args.kernels)
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
