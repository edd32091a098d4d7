"""save/load: exact round trips, atomic writes, and a clear error for every bad file."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

import fastmf.serve.files.encode as encode
from fastmf.datasets.synthetic import synthetic
from fastmf.model import MatrixFactorization, NotFittedError
from fastmf.serialize import FORMAT_VERSION, ModelFileError, load, save


@pytest.fixture(scope="module")
def ratings():
    return synthetic(120, 70, 4000, random_state=11)


def fit(df, **params):
    defaults = {"n_factors": 5, "n_epochs": 4, "random_state": 0, "verbose": 0}
    defaults.update(params)
    return MatrixFactorization(**defaults).fit(df)


def assert_same_model(a: MatrixFactorization, b: MatrixFactorization, df: pd.DataFrame) -> None:
    for name in (
        "user_bias_", "item_bias_", "user_factors_", "item_factors_", "seen_indptr_",
        "seen_items_", "user_ids_", "item_ids_",
    ):  # fmt: skip
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
        assert [type(v) for v in x[:3].tolist()] == [type(v) for v in y[:3].tolist()], name
    assert b.global_mean_ == a.global_mean_ and type(b.global_mean_) is type(a.global_mean_)
    assert b.rating_scale_ == a.rating_scale_
    assert b.n_epochs_done_ == a.n_epochs_done_ and b.best_epoch_ == a.best_epoch_
    assert b.item_titles_ == a.item_titles_
    pd.testing.assert_frame_equal(b.history_, a.history_)
    assert b.get_params() == a.get_params()
    # bit-identical predictions
    pa, pb = a.predict(df), b.predict(df)
    assert pa.tobytes() == pb.tobytes()
    pa, pb = a.predict(df, clip=False), b.predict(df, clip=False)
    assert pa.tobytes() == pb.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact(tmp_path, ratings, dtype):
    m = fit(ratings, dtype=dtype, validation_fraction=0.1)
    path = tmp_path / "model.fastmf"
    m.save(path)
    loaded = load(path)
    assert isinstance(loaded, MatrixFactorization)
    assert_same_model(m, loaded, ratings)
    assert "val_rmse" in loaded.history_.columns
    # a loaded model excludes the same seen items
    users = m.user_ids_[:20]
    a = m.recommend_many(users, n=5)
    b = loaded.recommend_many(users, n=5)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_string_ids_and_titles_round_trip(tmp_path, ratings):
    df = ratings.assign(
        user=[f"user-{u}" for u in ratings["user"]], item=[f"movie:{i}" for i in ratings["item"]]
    )
    titles = {f"movie:{i}": f"Title é {i}" for i in ratings["item"].unique()[:30]}
    m = MatrixFactorization(n_factors=4, n_epochs=3, random_state=1, verbose=0)
    m.fit(df, item_titles=titles)
    save(m, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert_same_model(m, loaded, df)
    assert loaded.item_ids_.dtype == object and isinstance(loaded.item_ids_[0], str)
    user = m.user_ids_[0]
    pd.testing.assert_frame_equal(loaded.recommend(user, n=4), m.recommend(user, n=4))


def test_int_titles_keys_and_mixed_early_stopping(tmp_path, ratings):
    titles = {int(i): f"t{i}" for i in ratings["item"].unique()}
    m = MatrixFactorization(
        n_factors=4, n_epochs=6, early_stopping=True, patience=1, random_state=2, verbose=0
    ).fit(ratings, item_titles=titles)
    m.save(tmp_path / "m.fastmf")
    loaded = load(tmp_path / "m.fastmf")
    assert_same_model(m, loaded, ratings)
    some = int(ratings["item"].iloc[0])
    assert loaded.item_titles_[some] == f"t{some}"


def test_partial_fit_continues_a_loaded_model_exactly(tmp_path, ratings):
    for optimizer in ("sgd", "adam"):
        m = fit(ratings, optimizer=optimizer, batch_size=1 if optimizer == "sgd" else 8)
        m.save(tmp_path / "m")
        loaded = load(tmp_path / "m")
        m.partial_fit(ratings)
        loaded.partial_fit(ratings)
        assert m.predict(ratings).tobytes() == loaded.predict(ratings).tobytes()
        pd.testing.assert_frame_equal(
            m.history_.drop(columns="seconds"), loaded.history_.drop(columns="seconds")
        )


def test_callables_are_dropped_with_a_warning(tmp_path, ratings):
    m = fit(ratings, callbacks=[lambda model, row: None])
    with pytest.warns(UserWarning, match="callbacks"):
        m.save(tmp_path / "m")
    assert load(tmp_path / "m").callbacks is None


def test_the_file_holds_no_pickle(tmp_path, ratings):
    fit(ratings).save(tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m") as zf:
        names = zf.namelist()
        assert names[0] == "fastmf-model" and "manifest.json" in names
        for name in names:
            if name.endswith(".npy"):
                with zf.open(name) as fh:
                    arr = np.load(fh, allow_pickle=False)
                assert arr.dtype != object
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format_version"] == FORMAT_VERSION


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(NotFittedError):
        save(MatrixFactorization(), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- atomic writes


def test_crash_mid_save_leaves_the_old_file_intact(tmp_path, ratings, monkeypatch):
    path = tmp_path / "model.fastmf"
    old = fit(ratings, random_state=0)
    old.save(path)
    before = path.read_bytes()
    new = fit(ratings, random_state=1)

    calls = {"n": 0}
    real = encode.write_array

    def failing(zf, member, arr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        real(zf, member, arr)

    monkeypatch.setattr(encode, "write_array", failing)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    assert calls["n"] == 3  # it failed midway, after writing some arrays
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fastmf"]  # no temp file left
    assert_same_model(old, load(path), ratings)

    monkeypatch.setattr(encode, "write_array", real)
    new.save(path)
    assert_same_model(new, load(path), ratings)


def test_crash_before_the_first_save_leaves_nothing(tmp_path, ratings, monkeypatch):
    def failing(zf, member, arr):
        raise KeyboardInterrupt

    monkeypatch.setattr(encode, "write_array", failing)
    with pytest.raises(KeyboardInterrupt):
        fit(ratings).save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_save_keeps_the_mode_of_a_replaced_file(tmp_path, ratings):
    path = tmp_path / "m"
    m = fit(ratings)
    m.save(path)
    os.chmod(path, 0o640)
    m.save(path)
    assert (path.stat().st_mode & 0o777) == 0o640


# --------------------------------------------------------------------------- bad files


@pytest.fixture()
def saved(tmp_path, ratings):
    path = tmp_path / "good.fastmf"
    fit(ratings).save(path)
    return path


def test_truncated_file(saved, tmp_path):
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 200):
        bad = tmp_path / f"cut{cut}"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated or corrupted"):
            load(bad)


def test_corrupted_array_bytes(saved, tmp_path):
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("arrays/user_factors_.npy")
    data = bytearray(saved.read_bytes())
    # flip a byte in the middle of the stored member's data (past its local header)
    at = info.header_offset + 30 + len(info.filename) + 200
    data[at] ^= 0xFF
    bad = tmp_path / "flipped"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load(bad)


def test_not_a_fastmf_file(tmp_path):
    text = tmp_path / "ratings.csv"
    text.write_text("user,item,rating\n1,2,3.0\n")
    with pytest.raises(ModelFileError, match="not a fastmf model file"):
        load(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="not a fastmf model file"):
        load(other_zip)
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.arange(3))
    with pytest.raises(ModelFileError, match="not a fastmf model file"):
        load(npz)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load(empty)
    with pytest.raises(FileNotFoundError, match="no model file"):
        load(tmp_path / "missing")


def rewrite_manifest(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "manifest.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            zout.writestr(info, data)


def test_newer_format_version(saved, tmp_path):
    newer = tmp_path / "newer"
    rewrite_manifest(
        saved, newer, lambda m: m.update(format_version=FORMAT_VERSION + 1, fastmf_version="9.0")
    )
    with pytest.raises(ModelFileError, match=r"newer fastmf \(9.0, model format version 2\)"):
        load(newer)


def test_manifest_without_version_or_with_foreign_class(saved, tmp_path):
    broken = tmp_path / "broken"
    rewrite_manifest(saved, broken, lambda m: m.pop("format_version"))
    with pytest.raises(ModelFileError, match="no valid format version"):
        load(broken)
    foreign = tmp_path / "foreign"

    def swap_class(m):
        m["train_state"]["class"] = "os:system"

    rewrite_manifest(saved, foreign, swap_class)
    with pytest.raises(ModelFileError, match="outside fastmf"):
        load(foreign)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)
