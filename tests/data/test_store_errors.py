"""Bad input leaves no half store behind, and a damaged store is refused with a named error."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from fastmf import RatingStore
from fastmf.data.store import StoreBuildError, StoreCorruptError, StoreVersionError, _files

from .test_store import ratings_frame


def nothing_left(parent, name="s"):
    """Neither the store nor a hidden half-built folder is left in ``parent``."""
    return not (parent / name).exists() and not list(parent.glob(f".{name}.*"))


def chunks(df, size):
    return [df.iloc[i : i + size] for i in range(0, len(df), size)]


def test_nan_rating_names_its_chunk_and_row(tmp_path):
    df = ratings_frame(5_000, 100, 50)
    df.loc[3_100, "rating"] = np.nan
    with pytest.raises(ValueError, match=r"chunk 3 .*from row 3000.*1 NaN.*rows 100\b"):
        RatingStore.build(tmp_path / "s", chunks(df, 1_000))
    assert nothing_left(tmp_path)


def test_duplicate_pairs_are_refused_by_default(tmp_path):
    df = ratings_frame(5_000, 100, 50)
    dup = pd.concat([df, df.iloc[[10]]], ignore_index=True)
    u, i = df.user.iloc[10], df.item.iloc[10]
    with pytest.raises(ValueError, match=rf"duplicate \(user, item\).*\({u}, {i}\).*'last'"):
        RatingStore.build(tmp_path / "s", dup)
    assert nothing_left(tmp_path)


def test_ids_of_mixed_types_across_chunks(tmp_path):
    df = ratings_frame(3_000, 100, 50)
    parts = chunks(df, 1_000)
    parts[2] = parts[2].assign(user=parts[2].user.astype(str))
    with pytest.raises(TypeError, match="user ids of mixed types: chunk 0 holds integers, chunk 2"):
        RatingStore.build(tmp_path / "s", parts)
    assert nothing_left(tmp_path)


def test_truncated_chunk_and_truncated_file(tmp_path):
    df = ratings_frame(3_000, 100, 50)
    parts = chunks(df, 1_000)
    parts[1] = parts[1][["user", "item"]]
    with pytest.raises(ValueError, match="chunk 1 .*no column 'rating'.*truncated"):
        RatingStore.build(tmp_path / "s", parts)
    assert nothing_left(tmp_path)
    path = tmp_path / "ratings.csv"
    lines = [f"{r.user},{r.item},{r.rating:g},1000" for r in df.itertuples()]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n17,4,")
    with pytest.raises(ValueError, match="line"):
        RatingStore.build(tmp_path / "s", path)
    assert nothing_left(tmp_path)


def test_a_chunk_that_is_not_a_frame(tmp_path):
    with pytest.raises(TypeError, match="chunk 1 of the source is a list"):
        RatingStore.build(tmp_path / "s", [ratings_frame(100, 10, 10), [1, 2, 3]])
    assert nothing_left(tmp_path)


def test_disk_full_during_the_build(tmp_path, monkeypatch):
    real = _files.ColumnWriter.write
    calls = {"n": 0}

    def filling(self, arr):
        calls["n"] += 1
        if calls["n"] > 40:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, arr)

    monkeypatch.setattr(_files.ColumnWriter, "write", filling)
    with pytest.raises(StoreBuildError, match="disk filled up.*nothing was left"):
        RatingStore.build(tmp_path / "s", ratings_frame(20_000, 300, 100), chunk_size=2_000)
    assert calls["n"] > 40
    assert nothing_left(tmp_path)


def test_disk_full_on_a_small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        with pytest.raises(StoreBuildError, match="disk filled up"):
            RatingStore.build(mount / "s", ratings_frame(60_000, 500, 200))
        assert nothing_left(mount)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_an_existing_path_is_never_overwritten(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        RatingStore.build(tmp_path / "s", ratings_frame(100, 10, 10))


@pytest.fixture
def built(tmp_path):
    RatingStore.build(tmp_path / "s", ratings_frame(20_000, 300, 100))
    return tmp_path / "s"


def test_truncated_file_is_refused_at_open(built):
    with open(built / "values.f32", "r+b") as f:
        f.truncate(100)
    with pytest.raises(StoreCorruptError, match=r"values.f32 has 100 bytes, the manifest says"):
        RatingStore.open(built)


def test_changed_contents_are_found_on_request(built):
    with open(built / "values.f32", "r+b") as f:
        f.seek(40)
        f.write(np.float32(4.5).tobytes())
    RatingStore.open(built)  # sizes match: the cheap check passes
    with pytest.raises(StoreCorruptError, match="values.f32 does not match its checksum"):
        RatingStore.open(built, verify=True)


def test_rows_outside_their_block_are_refused_when_read(built):
    store = RatingStore.open(built)
    b = store.n_strata + 1  # block (1, 1)
    lo, _ = store.block_range(b)
    with open(built / "users.i32", "r+b") as f:
        f.seek(lo * 4)
        f.write(np.int32(0).tobytes())  # a row of stratum 0
    store = RatingStore.open(built)
    with pytest.raises(StoreCorruptError, match=f"block {b} .* rows outside its strata"):
        store.read_block(b)


def test_missing_manifest_and_other_versions(built):
    manifest = json.loads((built / "manifest.json").read_text())
    (built / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(StoreVersionError, match="version 99"):
        RatingStore.open(built)
    (built / "manifest.json").unlink()
    with pytest.raises(StoreCorruptError, match="holds no manifest.json.*did not finish"):
        RatingStore.open(built)


def test_a_missing_file_and_a_bad_layout(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    (copy / "items.i32").unlink()
    with pytest.raises(StoreCorruptError, match="items.i32 is missing"):
        RatingStore.open(copy)
    offsets = np.load(built / "block_offsets.npy")
    offsets[3] = offsets[4] + 1
    np.save(built / "block_offsets.npy", offsets)
    # a same-size rewrite: the layout check sees it
    with pytest.raises(StoreCorruptError, match="layout .* does not fit"):
        RatingStore.open(built)


def test_open_a_folder_that_is_not_there(tmp_path):
    with pytest.raises(FileNotFoundError, match="no rating store"):
        RatingStore.open(tmp_path / "nothing")
