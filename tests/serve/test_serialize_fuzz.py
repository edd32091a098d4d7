"""Fuzzing model files: every truncation is refused, every byte flip is refused or harmless,
and random changes to the manifest give ModelFileError or a valid model, never another error."""

from __future__ import annotations

import copy
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmf.datasets.synthetic import synthetic
from fastmf.model import MatrixFactorization
from fastmf.serialize import ModelFileError, load
from tests.serve.model_files import manifest_of, members, with_manifest, write_zip

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def ratings():
    return synthetic(12, 25, 260, random_state=8)


@pytest.fixture(scope="module")
def saved(ratings, tmp_path_factory):
    m = MatrixFactorization(
        n_factors=2, n_epochs=2, optimizer="adam", batch_size=4, validation_fraction=0.2,
        random_state=1, verbose=0, n_jobs=1,
    ).fit(ratings, item_titles={int(i): f"t{i}" for i in ratings["item"].unique()[:3]})  # fmt: skip
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "good.fastmf"
    m.save(path)
    return {"model": load(path), "bytes": path.read_bytes(), "folder": folder, "path": path}


def same_model(a: MatrixFactorization, b: MatrixFactorization, ratings: pd.DataFrame) -> None:
    assert a.get_params() == b.get_params()
    for name in ("user_bias_", "item_bias_", "user_factors_", "item_factors_", "seen_indptr_",
                 "seen_items_", "user_ids_", "item_ids_"):  # fmt: skip
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    for name in ("global_mean_", "rating_scale_", "n_epochs_done_", "best_epoch_", "item_titles_"):
        assert getattr(a, name) == getattr(b, name), name
    pd.testing.assert_frame_equal(a.history_, b.history_)
    sa, sb = a._state, b._state
    assert sa.rng.bit_generator.state == sb.rng.bit_generator.state
    assert (sa.learning_rate, sa.plateau_best) == (sb.learning_rate, sb.plateau_best)
    for key in sa.optimizer:
        assert sa.optimizer[key].tobytes() == sb.optimizer[key].tobytes(), key
    assert sa.user_strata.starts.tolist() == sb.user_strata.starts.tolist()
    assert sa.item_strata.starts.tolist() == sb.item_strata.starts.tolist()
    assert a.predict(ratings).tobytes() == b.predict(ratings).tobytes()


def boundaries(path) -> list[int]:
    """Offsets where the structure changes: each member's local header, name, data and end,
    the central directory's entries and the end record."""
    data = path.read_bytes()
    out = {0, 1, 4, 29, 30, len(data) - 22, len(data) - 1}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            start = info.header_offset + 30 + len(info.filename)
            out |= {info.header_offset, info.header_offset + 30, start, start + 10,
                    start + 128, start + info.compress_size - 1}  # fmt: skip
    at = data.find(b"PK\x01\x02")
    while at != -1:
        out |= {at, at + 46}
        at = data.find(b"PK\x01\x02", at + 1)
    return sorted(x for x in out if 0 <= x < len(data))


def load_or_refuse(path):
    try:
        return load(path)
    except ModelFileError:
        return None


# --------------------------------------------------------------------------- truncations


def test_every_structural_truncation_is_refused(saved):
    data = saved["bytes"]
    bad = saved["folder"] / "cut.fastmf"
    for cut in boundaries(saved["path"]):
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            load(bad)


@settings(FUZZ, max_examples=150)
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_truncations_are_refused(saved, fraction):
    data = saved["bytes"]
    bad = saved["folder"] / "cut.fastmf"
    bad.write_bytes(data[: int(fraction * len(data))])
    with pytest.raises(ModelFileError):
        load(bad)


# --------------------------------------------------------------------------- byte flips


def check_flip(saved, ratings, at: int, xor: int) -> bool:
    data = bytearray(saved["bytes"])
    data[at] ^= xor
    bad = saved["folder"] / "flip.fastmf"
    bad.write_bytes(bytes(data))
    loaded = load_or_refuse(bad)
    if loaded is not None:
        same_model(saved["model"], loaded, ratings)
    return loaded is None


@settings(FUZZ, max_examples=300)
@given(data=st.data(), xor=st.integers(1, 255))
def test_a_byte_flip_is_refused_or_changes_nothing(saved, ratings, data, xor):
    n = len(saved["bytes"])
    at = data.draw(st.integers(0, n - 1) | st.sampled_from(boundaries(saved["path"])))
    check_flip(saved, ratings, at, xor)


def test_flips_in_array_data_are_refused_by_the_crc(saved, ratings):
    with zipfile.ZipFile(saved["path"]) as zf:
        info = zf.getinfo("arrays/item_factors_.npy")
    start = info.header_offset + 30 + len(info.filename) + 128
    for at in range(start, start + info.file_size - 128):
        assert check_flip(saved, ratings, at, 0x01), at


@pytest.mark.slow
def test_a_third_of_all_byte_flips_are_refused_or_change_nothing(saved, ratings):
    offsets = range(0, len(saved["bytes"]), 3)
    refused = sum(check_flip(saved, ratings, at, 0xFF if at % 2 else 0x10) for at in offsets)
    assert refused > 0.9 * len(offsets)  # only header fields nobody reads still load


# --------------------------------------------------------------------------- manifests

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([10**400, -10**400])
    | st.floats() | st.text(max_size=8)
    | st.sampled_from(["array", "dataclass", "os:system", "builtins:eval", "arrays/user_bias_.npy",
                       "PCG64", "float64", "|O", "predict", "__class__"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for j, v in enumerate(node):
            yield from paths(v, (*prefix, j))


@settings(FUZZ, max_examples=250)
@given(data=st.data(), value=JSON)
def test_a_changed_manifest_is_refused_or_loads_a_valid_model(saved, ratings, data, value):
    entries = members(saved["path"])
    manifest = manifest_of(entries)
    where = data.draw(st.sampled_from(list(paths(manifest))[1:]))
    changed = copy.deepcopy(manifest)
    node = changed
    for key in where[:-1]:
        node = node[key]
    if data.draw(st.booleans()) and isinstance(node, dict):
        del node[where[-1]]
    else:
        node[where[-1]] = value
    bad = write_zip(saved["folder"] / "manifest.fastmf", with_manifest(entries, changed))
    loaded = load_or_refuse(bad)
    if loaded is not None:  # e.g. another valid verbose level: it must be a working model
        pred = loaded.predict(ratings)
        assert pred.shape == (len(ratings),) and all(math.isfinite(x) for x in pred)


def test_the_fuzzed_file_is_a_real_model(saved, ratings):
    manifest = json.loads(zipfile.ZipFile(saved["path"]).read("manifest.json"))
    assert manifest["train_state"] is not None and "val_rmse" in [
        c["name"] for c in manifest["attributes"]["history_"]["columns"]
    ]
    assert np.isfinite(saved["model"].predict(ratings)).all()
