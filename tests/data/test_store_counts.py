"""The ratings per user and per item a store keeps from its build: equal to a count of its
ratings, checked when read, and counted from the blocks for a store built without them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization, RatingStore
from fastmf.data.store import StoreCorruptError


def frame(n: int, seed: int = 0, duplicates: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, 300, n) * 3 + 11,
            "item": rng.integers(0, 200, n) * 7 + 2,
            "rating": rng.integers(1, 6, n).astype(np.float32),
        }
    )
    return df if duplicates else df.drop_duplicates(["user", "item"]).reset_index(drop=True)


def counted(store: RatingStore, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each model row's ratings, counted from the frame in numpy."""
    out = []
    for ids, column in ((store.user_map.ids, "user"), (store.item_map.ids, "item")):
        row = {int(x): k for k, x in enumerate(ids)}
        out.append(np.bincount([row[int(x)] for x in df[column]], minlength=len(ids)))
    return out[0], out[1]


def drop_counts_from_manifest(path) -> None:
    """Make the store look like one built before the counts were written."""
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in ("user_counts.npy", "item_counts.npy"):
        del manifest["files"][name]
        (path / name).unlink()
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("n", [1, 50, 5_000, 40_000])
def test_counts_equal_a_count_of_the_ratings(tmp_path, n):
    df = frame(n)
    store = RatingStore.build(tmp_path / "s", df)
    users, items = store.rating_counts()
    want_u, want_i = counted(store, df)
    np.testing.assert_array_equal(users, want_u)
    np.testing.assert_array_equal(items, want_i)
    assert users.dtype == np.int64 and users.sum() == store.n_ratings


def test_counts_after_duplicates_are_dropped_count_the_kept_ratings(tmp_path):
    df = frame(20_000, seed=3, duplicates=True)
    store = RatingStore.build(tmp_path / "s", df, duplicates="last")
    kept = df.drop_duplicates(["user", "item"], keep="last")
    assert store.manifest["duplicates_dropped"] == len(df) - len(kept) > 0
    users, items = store.rating_counts()
    want_u, want_i = counted(store, kept)
    np.testing.assert_array_equal(users, want_u)
    np.testing.assert_array_equal(items, want_i)


def test_a_store_without_counts_counts_its_blocks(tmp_path):
    df = frame(8_000, seed=1)
    store = RatingStore.build(tmp_path / "s", df)
    stored = store.rating_counts()
    drop_counts_from_manifest(tmp_path / "s")
    older = RatingStore.open(tmp_path / "s")
    for a, b in zip(stored, older.rating_counts(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_auto_parameters_resolve_the_same_with_and_without_stored_counts(tmp_path):
    df = frame(8_000, seed=2)
    store = RatingStore.build(tmp_path / "s", df)
    with_counts = MatrixFactorization(n_epochs=1, verbose=0, random_state=0).fit(store)
    drop_counts_from_manifest(tmp_path / "s")
    without = MatrixFactorization(n_epochs=1, verbose=0, random_state=0).fit(
        RatingStore.open(tmp_path / "s")
    )
    assert (with_counts.n_factors_, with_counts.reg_, with_counts.n_epochs_) == (
        without.n_factors_,
        without.reg_,
        without.n_epochs_,
    )
    np.testing.assert_array_equal(with_counts.user_factors_, without.user_factors_)


def overwrite_counts(path, name: str, counts: np.ndarray, keep_checksum: bool) -> None:
    """Replace a counts file; with ``keep_checksum`` the manifest is updated to match, as a
    crafted store would be."""
    with open(path / f"{name}.npy", "wb") as f:
        np.save(f, counts, allow_pickle=False)
    if keep_checksum:
        from fastmf.data.store._files import file_crc

        manifest_path = path / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        entry = manifest["files"][f"{name}.npy"]
        entry["size"] = (path / f"{name}.npy").stat().st_size
        entry["crc32"] = file_crc(path / f"{name}.npy")
        manifest_path.write_text(json.dumps(manifest))


def test_changed_counts_fail_their_checksum(tmp_path):
    store = RatingStore.build(tmp_path / "s", frame(5_000))
    users, _ = store.rating_counts()
    changed = users.copy()
    changed[0], changed[-1] = changed[-1] + 1, changed[0]
    overwrite_counts(tmp_path / "s", "user_counts", changed, keep_checksum=False)
    with pytest.raises(StoreCorruptError, match="checksum"):
        RatingStore.open(tmp_path / "s").rating_counts()


@pytest.mark.parametrize(
    "craft",
    [
        lambda c: c[:-1],  # one count short
        lambda c: np.where(np.arange(c.size) == 0, -1, c),  # a negative count
        lambda c: c + 1,  # more ratings than the blocks hold
        lambda c: c.astype(np.float64),  # not integers
    ],
)
def test_crafted_counts_that_do_not_fit_the_blocks_are_refused(tmp_path, craft):
    store = RatingStore.build(tmp_path / "s", frame(5_000))
    _, items = store.rating_counts()
    overwrite_counts(tmp_path / "s", "item_counts", craft(items), keep_checksum=True)
    with pytest.raises(StoreCorruptError, match="rating counts"):
        RatingStore.open(tmp_path / "s").rating_counts()
