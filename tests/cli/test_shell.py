"""The ``fastmf`` command as a shell runs it (``python -m fastmf`` in a subprocess): exit codes,
stderr without tracebacks, a closed pipe, Ctrl-C, ``--version``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastmf
import fastmf.cli

ROOT = Path(fastmf.__file__).resolve().parent.parent
# generous: a cold Numba cache compiles the kernels in the first run (about 20 s, more when busy)
TIMEOUT = 300


def _env(**extra: str) -> dict[str, str]:
    """The environment of a child ``fastmf``: this checkout of fastmf first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop(fastmf.cli.TRACEBACK_ENV, None)
    env.update(extra)
    return env


def fastmf_run(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastmf", *args],
        capture_output=True,
        text=True,
        env=_env(**extra),
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def unreadable_dataset(tmp_path) -> Path:
    """A ratings file that fails to load: an option error must win over it."""
    path = tmp_path / "ratings.csv"
    path.write_text("this is not a ratings file\n\x00\x01\n")
    return path


def test_version():
    out = fastmf_run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"fastmf {fastmf.__version__}"
    from fastmf._version import __version__

    assert fastmf.__version__ == __version__


def test_the_unreadable_dataset_does_fail_to_load(unreadable_dataset):
    out = fastmf_run("train", "--dataset", str(unreadable_dataset), "--n-epochs", "1")
    assert out.returncode == 1
    assert out.stderr.startswith("fastmf: error: ") and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--optimizer", "foo"], "invalid choice: 'foo'"),
        (["--save", "/nonexistent/dir/x.fastmf"], "does not exist"),
        (["--plot", "out.txt"], "has the suffix .txt"),
        (["--n-factors", "1000000000000"], "lower --n-factors"),
    ],
)
def test_usage_errors_exit_2_before_the_data(unreadable_dataset, options, message):
    out = fastmf_run("train", "--dataset", str(unreadable_dataset), *options)
    assert out.returncode == 2
    assert message in out.stderr and "usage: fastmf train" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_help_lists_the_choices():
    out = fastmf_run("train", "--help")
    assert out.returncode == 0
    for choice in ("sgd,adagrad,adam,row_adagrad", "learned,fixed,none", "table,csv,json"):
        assert choice in out.stdout
    assert "0.8 for exponential" in " ".join(out.stdout.split())


def test_runtime_errors_exit_1_in_one_line(tmp_path):
    out = fastmf_run("train", "--learning-rate", "100", "--n-epochs", "2", "--n-factors", "4")
    assert out.returncode == 1
    lines = [line for line in out.stderr.strip().splitlines() if "compiling fastmf's" not in line]
    assert len(lines) == 1 and lines[0].startswith("fastmf: error: training diverged")
    missing_user = fastmf_run("recommend", "--model", str(tmp_path / "none.fastmf"), "--user", "1")
    assert missing_user.returncode == 2 and "no such file" in missing_user.stderr


def test_the_traceback_is_there_when_asked_for():
    out = fastmf_run("train", "--learning-rate", "100", "--n-epochs", "1", "--n-factors", "4",
                     **{fastmf.cli.TRACEBACK_ENV: "1"})  # fmt: skip
    assert out.returncode == 1 and "Traceback" in out.stderr and "NonFiniteModelError" in out.stderr


def _start_training(*args: str, **extra: str) -> subprocess.Popen:
    env = _env(**extra)
    env.pop("PYTHONUNBUFFERED", None)  # stdout block-buffered, as in a real pipe
    return subprocess.Popen(
        [sys.executable, "-m", "fastmf", "train", "--n-factors", "8", "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _epoch_rows(proc: subprocess.Popen, n: int) -> list[bytes]:
    """Read stdout until ``n`` rows of the epoch table have arrived."""
    rows: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    while len(rows) < n:
        assert time.monotonic() < deadline, "no epoch rows in time"
        line = proc.stdout.readline()
        assert line, f"stdout ended early; stderr: {proc.stderr.read().decode()}"
        if line.split()[:1] and line.split()[0].isdigit():
            rows.append(line)
    return rows


def test_a_closed_pipe_ends_quietly():
    proc = _start_training("--n-epochs", "100000")
    try:
        _epoch_rows(proc, 1)
        proc.stdout.close()  # the reader goes away, as `| head` does
        code = proc.wait(timeout=TIMEOUT)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
    assert code == fastmf.cli.EXIT_BROKEN_PIPE == 141
    assert "Broken pipe" not in err and "BrokenPipeError" not in err and "Traceback" not in err


def test_ctrl_c_saves_the_last_completed_epoch(tmp_path):
    path = tmp_path / "m.fastmf"
    proc = _start_training("--n-epochs", "100000", "--save", str(path))
    try:
        rows = _epoch_rows(proc, 2)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=TIMEOUT)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
    assert code == 130, err
    assert "Traceback" not in err and f"saved to {path}" in err
    model = fastmf.load(path)
    assert model.n_epochs_done_ >= 2
    assert [int(r.split()[0]) for r in rows] == [1, 2]
    assert len(model.history_) == model.n_epochs_done_


def test_ctrl_c_without_save_says_nothing_was_saved():
    proc = _start_training("--n-epochs", "100000")
    try:
        _epoch_rows(proc, 1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=TIMEOUT)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
    assert code == 130 and "not saved" in err and "Traceback" not in err


def test_a_cold_cache_is_detected(tmp_path):
    probe = (
        "from fastmf import MatrixFactorization; from fastmf.cli.train import kernels_cached; "
        "print(kernels_cached(MatrixFactorization()._check_params()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=_env(NUMBA_CACHE_DIR=str(tmp_path / "empty-cache")),
        timeout=TIMEOUT,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
