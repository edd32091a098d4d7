"""save: tampered models are refused, symlinks keep, temp files of killed saves are removed."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastmf.serialize as ser
from fastmf.datasets.synthetic import synthetic
from fastmf.model import MatrixFactorization
from fastmf.ratings import IdMap
from fastmf.serialize import load, save
from fastmf.serve.files.state import FittedState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ratings():
    return synthetic(40, 30, 900, random_state=4)


@pytest.fixture()
def model(ratings):
    m = MatrixFactorization(
        n_factors=4, n_epochs=2, optimizer="adagrad", batch_size=4, random_state=0, verbose=0,
        n_jobs=1,
    )  # fmt: skip
    return m.fit(ratings)


# --------------------------------------------------------------------------- tampering


def _set(name, make):
    def tamper(m):
        setattr(m, name, make(m))

    return tamper


def _optimizer(key, make):
    def tamper(m):
        m._state.optimizer[key] = make(m._state.optimizer[key])

    return tamper


def _nan_at(arr):
    arr = arr.copy()
    arr.reshape(-1)[0] = np.nan
    return arr


TAMPERINGS = {
    "user_factors_": _set("user_factors_", lambda m: m.user_factors_[:2]),
    "item_factors_": _set("item_factors_", lambda m: m.item_factors_[:, :3]),
    "user_bias_": _set("user_bias_", lambda m: m.user_bias_.astype(np.int64)),
    "item_bias_": _set("item_bias_", lambda m: m.item_bias_[:1]),
    "item_bias_ ": _set("item_bias_", lambda m: m.item_bias_.tolist()),
    "user_factors_  ": _set("user_factors_", lambda m: _nan_at(m.user_factors_)),
    "user_factors_   ": _set("user_factors_", lambda m: m.user_factors_.astype(np.float64)),
    "global_mean_": _set("global_mean_", lambda m: float("nan")),
    "rating_scale_": _set("rating_scale_", lambda m: (5.0, 1.0)),
    "seen_items_": _set("seen_items_", lambda m: m.seen_items_ + 10_000),
    "seen_indptr_": _set("seen_indptr_", lambda m: m.seen_indptr_[:-1]),
    "user_map_: has 5 ids": _set("user_map_", lambda m: IdMap(m.user_map_.ids[:5])),
    "_state.optimizer.P_s1": _optimizer("P_s1", lambda a: a[:1]),
    "_state.optimizer.Q_s1": _optimizer("Q_s1", _nan_at),
    "user_factors_.*n_factors=9": lambda m: m._state.fit_params.update(n_factors=9),
    "params: optimizer": _set("optimizer", lambda m: "evil"),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_a_model_tampered_with_in_memory_is_refused_at_save(tmp_path, model, name):
    TAMPERINGS[name](model)
    with pytest.raises(ValueError, match=f"cannot save this model: {name.strip()}") as info:
        save(model, tmp_path / "m.fastmf")
    assert not isinstance(info.value, ser.ModelFileError)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_one_check_for_save_and_load(tmp_path, model, monkeypatch):
    """save and load run the same checks: disabling them lets the tampered model be written,
    and load then refuses the file naming the same attribute."""
    model.item_bias_ = model.item_bias_[:1]
    monkeypatch.setattr(FittedState, "check", lambda self: None)
    save(model, tmp_path / "m.fastmf")
    monkeypatch.undo()
    with pytest.raises(ser.ModelFileError, match="item_bias_: has dtype float32 and shape"):
        load(tmp_path / "m.fastmf")


def test_extra_attributes_are_left_out_with_a_warning(tmp_path, model, ratings):
    model.my_note_ = "hello"
    with pytest.warns(UserWarning, match="my_note_"):
        save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert "my_note_" not in vars(loaded)
    assert loaded.predict(ratings).tobytes() == model.predict(ratings).tobytes()


def test_a_numpy_dtype_parameter_is_saved_by_name(tmp_path, ratings):
    m = MatrixFactorization(n_factors=3, n_epochs=1, dtype=np.float64, verbose=0).fit(ratings)
    save(m, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.dtype == "float64" and loaded.user_factors_.dtype == np.float64


# --------------------------------------------------------------------------- paths


def test_saving_through_a_symlink_writes_its_target(tmp_path, model, ratings):
    real = tmp_path / "store" / "model.fastmf"
    real.parent.mkdir()
    link = tmp_path / "current.fastmf"
    link.symlink_to(real)  # dangling until the first save
    save(model, link)
    assert link.is_symlink() and os.readlink(link) == str(real) and real.is_file()
    model.partial_fit(ratings)
    save(model, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert load(real).predict(ratings).tobytes() == model.predict(ratings).tobytes()
    assert sorted(p.name for p in real.parent.iterdir()) == ["model.fastmf"]


def test_saving_onto_a_folder_is_refused(tmp_path, model):
    (tmp_path / "m").mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        save(model, tmp_path / "m")


# --------------------------------------------------------------------------- temp files


def stale(folder: Path, name: str, size: int = 100, age: float = 0.0) -> Path:
    path = folder / f".{name}.{os.urandom(4).hex()}.tmp"
    path.write_bytes(b"x" * size)
    if age:
        t = time.time() - age
        os.utime(path, (t, t))
    return path


def test_a_save_removes_temp_files_of_killed_saves_only(tmp_path, model):
    dead = [stale(tmp_path, "m.fastmf") for _ in range(3)]
    empty_old = stale(tmp_path, "m.fastmf", size=0, age=3600)
    empty_new = stale(tmp_path, "m.fastmf", size=0)  # may be a save that has not locked it yet
    other = stale(tmp_path, "other.fastmf")
    near = tmp_path / ".m.fastmf.tmp"  # no random part: not a name a save creates
    near.write_bytes(b"x")
    mine = tmp_path / "m.fastmf.abc.tmp"  # not hidden
    mine.write_bytes(b"x")
    backup = tmp_path / ".m.fastmf.my-backup.tmp"  # not a name mkstemp makes
    backup.write_bytes(b"x")
    save(model, tmp_path / "m.fastmf")
    left = {p.name for p in tmp_path.iterdir()}
    assert not any(p.name in left for p in [*dead, empty_old])
    assert {empty_new.name, other.name, near.name, mine.name, backup.name, "m.fastmf"} == left


def test_a_live_writers_temp_file_is_kept(tmp_path, model):
    """A thread holding the lock on its temp file (as a save in progress does) keeps it."""
    live = stale(tmp_path, "m.fastmf")
    locked, release = threading.Event(), threading.Event()

    def writer():
        with open(live, "r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert locked.wait(30)
        save(model, tmp_path / "m.fastmf")
        assert live.exists()
    finally:
        release.set()
        thread.join()
    save(model, tmp_path / "m.fastmf")
    assert not live.exists()


def test_a_killed_save_leaves_a_temp_file_that_the_next_save_removes(tmp_path, model):
    """A save in another process is live while it runs and stale once it is killed."""
    path = tmp_path / "m.fastmf"
    save(model, path)
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import fastmf.serialize as ser
        import fastmf.serve.files.encode as encode
        model = ser.load({str(path)!r})
        real = encode.write_array
        def slow(zf, member, arr):
            real(zf, member, arr)
            print("writing", flush=True)
            time.sleep(600)
        encode.write_array = slow
        ser.save(model, {str(path)!r})
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline() == b"writing\n"
        (tmp,) = tmp_path.glob(".m.fastmf.*.tmp")
        save(model, path)  # the child's save is live: its file stays
        assert tmp.exists()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        assert tmp.exists()  # what a killed save leaves
        save(model, path)
        assert not tmp.exists()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["m.fastmf"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert isinstance(load(path), MatrixFactorization)
