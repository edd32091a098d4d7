"""Run a child process under a memory limit: a v1 memory cgroup made for it and removed after.

Needs root and ``/sys/fs/cgroup/memory`` (cgroup v1). Page cache counts toward the limit and is
reclaimed under pressure; anonymous memory is not (there is no swap), so a child that allocates
past the limit is killed (exit -9) and ``failcnt`` says how often the limit was hit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup/memory")


def available() -> str | None:
    """None when a memory cgroup can be made here, else why not."""
    if not ROOT.is_dir() or not (ROOT / "cgroup.procs").exists():
        return "no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory"
    if os.geteuid() != 0:
        return "making a memory cgroup needs root"
    probe = ROOT / f"fastmf-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot make a memory cgroup ({exc})"
    probe.rmdir()
    return None


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int  # the cgroup's max_usage_in_bytes: anonymous memory and page cache
    failcnt: int  # how often usage hit the limit (page cache was reclaimed, or worse)


def run_limited(args: list[str], limit_bytes: int, *, timeout: float, env=None) -> Run:
    """Run ``python args...`` in a fresh memory cgroup of ``limit_bytes``; remove it after."""
    group = ROOT / f"fastmf-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(int(limit_bytes)))
        procs = group / "cgroup.procs"
        t0 = time.perf_counter()
        child = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            preexec_fn=lambda: procs.write_text(str(os.getpid())),  # noqa: PLW1509
        )
        seconds = time.perf_counter() - t0
        peak = int((group / "memory.max_usage_in_bytes").read_text())
        fails = int((group / "memory.failcnt").read_text())
        return Run(child.returncode, child.stdout, child.stderr, seconds, peak, fails)
    finally:
        _remove(group)


def _remove(group: Path) -> None:
    """Remove the cgroup once its processes are gone (force_empty first: cached pages)."""
    for _ in range(50):
        try:
            if (group / "cgroup.procs").read_text().strip():
                time.sleep(0.1)
                continue
            (group / "memory.force_empty").write_text("0")
        except OSError:
            pass
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
