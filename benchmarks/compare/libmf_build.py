"""LIBMF at its fastest: the ``libmf`` package's own C++ sources built with AVX and OpenMP.

The ``libmf`` package on PyPI compiles LIBMF with no SIMD or OpenMP switch. Here the same sources
(the package's sdist, fetched with pip) are compiled into a shared library with
``-O3 -march=native -DUSEAVX -DUSEOMP``, which the package's own Python binding then loads through
its ``LIBMF_OBJ`` variable, so both builds are driven by the same code. Sources and the build live
in a cache folder (``$FASTMF_BENCH_CACHE`` or ``~/.cache/fastmf-bench``), never in the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks.compare.machine import package_version

FLAGS = ["-O3", "-march=native", "-DUSEAVX", "-DUSEOMP", "-fopenmp", "-std=c++11"]


def cache_dir() -> Path:
    """Where downloaded sources and built libraries are kept."""
    root = os.environ.get("FASTMF_BENCH_CACHE") or Path.home() / ".cache" / "fastmf-bench"
    return Path(root)


def built_library(version: str | None = None) -> Path:
    """Path of the AVX/OpenMP build of LIBMF for the installed ``libmf`` version."""
    version = version or package_version("libmf") or "unknown"
    return cache_dir() / f"libmf-{version}-avx-omp" / "libmf_avx.so"


def build_libmf_avx(*, force: bool = False, quiet: bool = True) -> Path:
    """Fetch the installed ``libmf`` version's sdist and build LIBMF with AVX and OpenMP.

    Returns the path of the shared library (reused when already built). Raises RuntimeError
    with the compiler's or pip's message when a step fails.
    """
    version = package_version("libmf")
    if version is None:
        raise RuntimeError("the libmf package is not installed (pip install libmf)")
    target = built_library(version)
    if target.is_file() and not force:
        return target
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (install g++)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            tmp,
            f"libmf=={version}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        archives = list(Path(tmp).glob("libmf-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(
                f"pip download of libmf=={version} sources failed: {done.stderr.strip()[-500:]}"
            )
        with tarfile.open(archives[0]) as tar:
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python without extraction filters
                tar.extractall(tmp)
        src = next(Path(tmp).glob("libmf-*/src_cpp"))
        sources = [str(src / "libmf_interface.cpp"), str(src / "mf.cpp")]
        out = target.with_suffix(".tmp.so")
        cmd = [compiler, *FLAGS, "-shared", "-fPIC", "-pthread", "-o", str(out), *sources]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"compiling LIBMF failed: {done.stderr.strip()[-800:]}")
        os.replace(out, target)
        (target.parent / "BUILD.txt").write_text(" ".join(cmd) + "\n")
    if not quiet:
        print(f"built {target}", file=sys.stderr)
    return target
