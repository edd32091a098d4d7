"""What the benchmark ran on: processor, cores, memory, versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def cpu_model() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_gb() -> float | None:
    """Physical memory in GiB, from /proc/meminfo where there is one."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def cpu_flags() -> list[str]:
    """The SIMD flags that matter for the kernels compared (AVX2, AVX-512, FMA)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f in {"avx", "avx2", "fma", "avx512f"})
    except OSError:
        pass
    return []


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None when it is absent."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """Processor, cores, memory, OS and the versions of Python and numpy."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cores": affinity,
        "memory_gb": memory_total_gb(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": package_version("numpy"),
        "numba": package_version("numba"),
        "fastmf": package_version("fastmf"),
    }
