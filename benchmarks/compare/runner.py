"""The side-by-side runner: one split, each library in its own process under a time and memory
budget, then the table, the JSON and the plot."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.compare.data import load_dataset, make_split
from benchmarks.compare.machine import machine_info, memory_total_gb
from benchmarks.compare.peers import PEERS

REPO = Path(__file__).resolve().parents[2]
# fastmf-sgd equals fastmf while fastmf's default batch_size is 1; ask for it by name.
DEFAULT_LIBRARIES = tuple(name for name in PEERS if name != "fastmf-sgd")
TARGET_FACTOR = 1.01


@dataclass
class Settings:
    """What a comparison runs: the data, the shared model settings and the budgets."""

    dataset: str = "synthetic-1m"
    n_factors: int = 64
    n_epochs: int = 20
    reg: float = 0.05
    threads: int = 2
    seed: int = 0
    test_fraction: float = 0.1
    libraries: Sequence[str] = DEFAULT_LIBRARIES
    time_budget: float = 1800.0
    memory_limit_gb: float | None = None
    options: dict[str, dict] = field(default_factory=dict)
    build_libmf: bool = True
    parallel: int = 1  # libraries run at once: 1 for measurements; more only for smoke tests
    python: dict[str, str] = field(default_factory=dict)  # library -> interpreter, if not ours
    out_dir: Path = REPO / "benchmarks" / "results"
    plot: bool = True

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        unknown = [name for name in self.libraries if name not in PEERS]
        if unknown:
            raise ValueError(f"unknown libraries {unknown}; choose from {sorted(PEERS)}")
        for name in ("n_factors", "n_epochs", "threads", "parallel"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.reg < 0:
            raise ValueError(f"reg must be >= 0, got {self.reg}")
        if self.time_budget <= 0:
            raise ValueError(f"time_budget must be > 0 seconds, got {self.time_budget}")
        for name in [*self.options, *self.python]:
            if name not in PEERS:
                raise ValueError(
                    f"--set names unknown library {name!r}; choose from {sorted(PEERS)}"
                )


def run_comparison(settings: Settings, log: Callable[[str], None] = print) -> dict:
    """Train every requested library on the same split and write the report.

    Returns the report as a dict (also written as JSON next to the markdown table and the plot;
    their paths are under ``"files"``).
    """
    settings.check()
    started = time.time()
    df, meta = load_dataset(settings.dataset, seed=settings.seed)
    split = make_split(df, meta, test_fraction=settings.test_fraction, seed=settings.seed)
    del df
    log(
        f"data {settings.dataset}: {split.meta['n_train']:,} train / {split.meta['n_test']:,} "
        f"test ratings, {split.n_users:,} users, {split.n_items:,} items"
    )
    limit = settings.memory_limit_gb or 0.8 * (memory_total_gb() or 16.0)
    work = Path(tempfile.mkdtemp(prefix="fastmf-compare-"))
    results = []
    try:
        split.save(work / "data")
        if settings.parallel > 1:  # smoke tests only: concurrent runs distort the timings
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(settings.parallel) as pool:
                results = list(
                    pool.map(
                        lambda job: _run_one(job[1], settings, work / str(job[0]), limit, log),
                        enumerate(settings.libraries),
                    )
                )
            for result in results:
                log(_one_line(result))
        else:
            for index, name in enumerate(settings.libraries):
                result = _run_one(name, settings, work / str(index), limit, log)
                results.append(result)
                log(_one_line(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "machine": machine_info(),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()
        },
        "data": split.meta | {"n_users": split.n_users, "n_items": split.n_items},
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "results": results,
    }
    _add_targets(report)
    from benchmarks.compare.report import write_report

    report["files"] = write_report(report, Path(settings.out_dir), plot=settings.plot)
    return report


def _run_one(name: str, settings: Settings, work: Path, limit_gb: float, log) -> dict:
    """Run one library in its own process; ``work`` is its own folder beside ``data/``."""
    peer = PEERS[name]
    result = {"library": name, "label": peer.label, "version": peer.version(), "curve": []}
    python = settings.python.get(name, sys.executable)
    if not _importable(peer.module, python):
        where = "" if python == sys.executable else f" in {python}"
        return result | {"status": "skipped", "reason": f"not installed{where} ({peer.install})"}
    if peer.build_libmf:
        from benchmarks.compare.libmf_build import build_libmf_avx, built_library

        try:
            if settings.build_libmf:
                build_libmf_avx()
            elif not built_library().is_file():
                raise RuntimeError("not built yet (run without --no-build to build it)")
        except RuntimeError as exc:
            return result | {"status": "skipped", "reason": f"LIBMF AVX build: {exc}"}
    work.mkdir(parents=True)
    spec_path = work / f"{name}.json"
    progress = work / f"{name}.progress.jsonl"
    spec = {
        "library": name,
        "data_dir": str(work.parent / "data"),
        "progress": str(progress),
        "n_factors": settings.n_factors,
        "n_epochs": settings.n_epochs,
        "reg": settings.reg,
        "threads": settings.threads,
        "seed": settings.seed,
        "options": {k: v for k, v in settings.options.get(name, {}).items() if k != "time_budget"},
    }
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    threads = str(settings.threads)
    env.update(
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        OPENBLAS_NUM_THREADS=threads,
        NUMBA_NUM_THREADS=threads,
        LK_NUM_THREADS=threads,
        PYTHONUNBUFFERED="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log_path = work / f"{name}.log"
    budget = float(settings.options.get(name, {}).get("time_budget", 0) or 0)
    budget = budget or peer.time_budget or settings.time_budget
    t0 = time.perf_counter()
    killed = None
    peak_polled = 0.0
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [python, "-m", "benchmarks.compare.worker", str(spec_path)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while proc.poll() is None:
                rss, hwm = _memory_gb(proc.pid)
                peak_polled = max(peak_polled, hwm, rss)
                if time.perf_counter() - t0 > budget:
                    killed = f"timeout after {budget:g} s"
                elif rss > limit_gb:
                    killed = f"out of memory (killed at {rss:.1f} GB > {limit_gb:.1f} GB)"
                if killed:
                    _kill(proc)
                    break
                time.sleep(0.1)
        except BaseException:
            _kill(proc)
            raise
    wall = time.perf_counter() - t0
    events = _read_events(progress)
    curve = [
        {k: v for k, v in e.items() if k not in ("event", "t")}
        for e in events
        if e["event"] == "epoch"
    ]
    result["curve"] = curve
    result["process_seconds"] = round(wall, 2)
    start = next((e for e in events if e["event"] == "start"), {})
    done = next((e for e in events if e["event"] == "done"), None)
    error = next((e for e in events if e["event"] == "error"), None)
    if done is not None:
        done = {k: v for k, v in done.items() if k not in ("event", "t")}
        result.update(done)
        result["status"] = "ok"
        epochs = done.get("epoch_seconds") or []
        result["seconds_per_epoch"] = (
            statistics.median(epochs) if epochs else done["fit_seconds"] / settings.n_epochs
        )
        result["total_seconds"] = done.get("prepare_seconds", 0.0) + done["fit_seconds"]
        result["rss_added_gb"] = max(0.0, done["peak_rss_gb"] - done["baseline_rss_gb"])
    else:
        if killed:
            result["status"] = killed
        elif error is not None:
            result["status"] = "error"
            result["reason"] = error["error"]
            result["traceback"] = error.get("traceback")
        else:
            code = proc.returncode
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            result["status"] = f"crashed ({how})"
            result["reason"] = _tail(log_path)
        result["peak_rss_gb"] = peak_polled
        if start.get("baseline_rss_gb") is not None:
            result["rss_added_gb"] = max(0.0, peak_polled - start["baseline_rss_gb"])
        if curve:
            result["reached"] = (
                f"{len(curve)} epochs, test RMSE {curve[-1]['test_rmse']:.4f} "
                f"at {curve[-1]['seconds']:.1f} s"
            )
    if result["version"] is None:
        result["version"] = start.get("version")
    return result


def _importable(module: str, python: str) -> bool:
    """Whether ``module`` can be imported by this interpreter or by the one at ``python``."""
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _memory_gb(pid: int) -> tuple[float, float]:
    """Current and peak resident memory (GiB) of a process, from /proc; zeros when unknown."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 2**20
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return rss, hwm


def _kill(proc: subprocess.Popen) -> None:
    """Stop the worker we started, with the process group it leads."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a kill
    return events


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def _add_targets(report: dict) -> None:
    """Target = 1.01 x the best final test RMSE; each library's time to first reach it."""
    finals = [r["final_rmse"] for r in report["results"] if r.get("status") == "ok"]
    target = TARGET_FACTOR * min(finals) if finals else None
    report["target_rmse"] = target
    for r in report["results"]:
        r["time_to_target"] = None
        r["time_to_target_upper_bound"] = False
        if target is None:
            continue
        hit = next((p for p in r.get("curve", []) if p["test_rmse"] <= target), None)
        if hit is not None:
            r["time_to_target"] = hit["seconds"]
            r["epochs_to_target"] = hit["epoch"]
        elif not r.get("curve") and r.get("status") == "ok" and r["final_rmse"] <= target:
            r["time_to_target"] = r["total_seconds"]  # reached by the end; when is unknown
            r["time_to_target_upper_bound"] = True
    # each whole fit to the target against LIBMF-AVX's in the same run
    avx = next((r for r in report["results"] if r["library"] == "libmf-avx"), {})
    for r in report["results"]:
        ttt, ref = r.get("time_to_target"), avx.get("time_to_target")
        exact = not (r.get("time_to_target_upper_bound") or avx.get("time_to_target_upper_bound"))
        r["time_to_target_vs_libmf_avx"] = ttt / ref if ttt and ref and exact else None


def _one_line(r: dict) -> str:
    if r.get("status") == "ok":
        return (
            f"  {r['library']:<20} {r['seconds_per_epoch']:.3f} s/epoch, fit "
            f"{r['fit_seconds']:.2f} s, test RMSE {r['final_rmse']:.4f}"
        )
    extra = r.get("reason") or r.get("reached") or ""
    return f"  {r['library']:<20} {r['status']}: {extra}".rstrip(": ")
