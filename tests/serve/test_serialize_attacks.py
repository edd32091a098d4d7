"""Crafted model files: every one is refused with ModelFileError, runs no code, allocates little."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import fastmf
import fastmf.serialize as ser
from fastmf.datasets.synthetic import synthetic
from fastmf.model import MatrixFactorization
from fastmf.serialize import ModelFileError, load
from tests.conftest import random_ratings
from tests.serve.model_files import (
    Entry,
    deflated_zeros,
    manifest_of,
    members,
    npy,
    npy_header,
    replace,
    with_manifest,
    write_zip,
)

MB = 1 << 20


@pytest.fixture(scope="module")
def model():
    df = synthetic(40, 30, 900, random_state=3)
    m = MatrixFactorization(
        n_factors=4, n_epochs=2, optimizer="adam", batch_size=4, validation_fraction=0.1,
        random_state=0, verbose=0, n_jobs=1,
    )  # fmt: skip
    return m.fit(df, item_titles={int(i): f"t{i}" for i in df["item"].unique()[:5]})


@pytest.fixture(scope="module")
def entries(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.fastmf"
    model.save(path)
    return members(path)


@pytest.fixture()
def guard(monkeypatch, tmp_path):
    """Fails the test if anything tries to run a command or delete a folder."""
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(("os.system", a)))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: calls.append(("rmtree", a)))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(("Popen", a)))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    yield {"calls": calls, "victim": victim, "sentinel": tmp_path / "SENTINEL"}
    assert calls == []
    assert (victim / "keep").read_text() == "x"
    assert not (tmp_path / "SENTINEL").exists()


def refused(path, match=None) -> ModelFileError:
    with pytest.raises(ModelFileError, match=match) as info:
        load(path)
    return info.value


def strip_declared(manifest: dict) -> dict:
    """The manifest without the dtype and shape of each array (as fastmf 0.1.0 wrote it), so
    that a crafted npy member is checked against the other arrays rather than the manifest."""

    def walk(node):
        if isinstance(node, dict):
            if node.get("t") == "array":
                node.pop("dtype", None)
                node.pop("shape", None)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    manifest = copy.deepcopy(manifest)
    walk(manifest)
    return manifest


def crafted(tmp_path, entries, change=None, members_change=None, name="bad.fastmf"):
    manifest = strip_declared(manifest_of(entries))
    if change is not None:
        change(manifest)
    out = with_manifest(entries, manifest)
    if members_change is not None:
        out = members_change(out)
    return write_zip(tmp_path / name, out)


def test_the_rewritten_file_itself_loads(tmp_path, entries, model):
    loaded = load(crafted(tmp_path, entries))
    assert loaded.predict(np.array([[1, 2]])).tolist() == model.predict(np.array([[1, 2]])).tolist()


# --------------------------------------------------------------------------- names of code

CODE = [
    "fastmf.serialize:os.system",
    "fastmf.datasets._cache:shutil.rmtree",
    "builtins:eval",
    "builtins:exec",
    "os:system",
    "subprocess:Popen",
    "fastmf.model:MatrixFactorization.fit",
    "fastmf.train.layout:Strata",  # a fastmf class, but not where a training state belongs
]


@pytest.mark.parametrize("target", CODE)
def test_a_dataclass_attribute_naming_code_is_refused(tmp_path, entries, guard, target):
    def change(m):
        m["attributes"]["user_bias_"] = {
            "t": "dataclass",
            "class": target,
            "fields": {
                "command": {"t": "plain", "v": f"touch {guard['sentinel']}"},
                "path": {"t": "plain", "v": str(guard["victim"])},
            },
        }

    refused(crafted(tmp_path, entries, change), "user_bias_")


@pytest.mark.parametrize("target", CODE)
def test_a_training_state_naming_code_is_refused(tmp_path, entries, guard, target):
    def change(m):
        m["train_state"]["class"] = target
        m["train_state"]["fields"] = {"path": {"t": "plain", "v": str(guard["victim"])}}

    refused(crafted(tmp_path, entries, change), "outside fastmf")


@pytest.mark.parametrize("target", CODE)
def test_strata_or_model_classes_naming_code_are_refused(tmp_path, entries, guard, target):
    def strata(m):
        m["train_state"]["fields"]["user_strata"]["class"] = target

    def top(m):
        m["class"] = target

    if target != "fastmf.train.layout:Strata":
        refused(crafted(tmp_path, entries, strata, name="a"), "outside fastmf")
    if target != "fastmf.model:MatrixFactorization":
        refused(crafted(tmp_path, entries, top, name="b"), "outside fastmf")


@pytest.mark.parametrize(
    "name", ["predict", "fit", "__class__", "__dict__", "_state", "save", "user_ids_", "foo_"]
)
def test_attributes_outside_the_fitted_state_are_refused(tmp_path, entries, guard, name):
    def change(m):
        m["attributes"][name] = {"t": "plain", "v": 1}

    refused(crafted(tmp_path, entries, change), "not an attribute of a fitted")


@pytest.mark.parametrize("kind", ["pickle", "dataclass", "generator", "frame", "eval", None, 3])
def test_unknown_kinds_are_refused(tmp_path, entries, guard, kind):
    def change(m):
        m["attributes"]["global_mean_"] = {"t": kind, "v": 3.5, "class": "os:system"}

    refused(crafted(tmp_path, entries, change), "global_mean_")


def test_unknown_bit_generator_and_bad_generator_state_are_refused(tmp_path, entries, guard):
    def name(m):
        m["train_state"]["fields"]["rng"]["bit_generator"] = "os.system"

    def state(m):
        m["train_state"]["fields"]["rng"]["state"]["state"] = {"state": "x", "inc": -1}

    refused(crafted(tmp_path, entries, name, name="a"), "bit generator")
    refused(crafted(tmp_path, entries, state, name="b"), "invalid PCG64 state")


# --------------------------------------------------------------------------- wrong arrays


def swap_member(label: str, arr: np.ndarray):
    def change(out):
        return replace(out, f"arrays/{label}.npy", npy(arr))

    return change


@pytest.mark.parametrize(
    "label, make, match",
    [
        ("user_factors_", lambda m: m.user_factors_[:2], "user_factors_: .*shape"),
        ("item_bias_", lambda m: m.item_bias_[:1], "item_bias_: .*shape"),
        ("user_factors_", lambda m: m.user_factors_[:, :2], "n_factors=4"),
        ("user_factors_", lambda m: m.user_factors_.astype(np.int64), "dtype int64"),
        ("user_bias_", lambda m: m.user_bias_.astype(np.float64), "dtype float64"),
        ("item_factors_", lambda m: m.item_factors_.astype(np.float16), "npy header|float16"),
        ("user_bias_", lambda m: np.array([None] * len(m.user_bias_)), "plain numeric"),
        ("user_bias_", lambda m: np.zeros(len(m.user_bias_), "<U3"), "plain numeric"),
        ("user_factors_", lambda m: np.asfortranarray(m.user_factors_), "Fortran"),
        ("user_bias_", lambda m: np.where(np.arange(len(m.user_bias_)) == 3, np.nan,
                                          m.user_bias_).astype(np.float32), "NaN or infinite"),
        ("item_factors_", lambda m: np.full_like(m.item_factors_, np.inf), "NaN or infinite"),
        ("state_optimizer_4", lambda m: m._state.optimizer["P_s1"][:3], "P_s1"),
        ("state_optimizer_8", lambda m: m._state.optimizer["u_steps"] - 10**6, "negative"),
        ("state_optimizer_0", lambda m: m._state.optimizer["bu_s1"] * np.nan, "NaN"),
        ("seen_indptr_", lambda m: m.seen_indptr_[::-1].copy(), "seen_indptr_"),
        ("seen_items_", lambda m: m.seen_items_ + 1000, "seen_items_"),
        ("seen_items_", lambda m: m.seen_items_.astype(np.int64), "seen_items_"),
        ("state_user_strata_starts", lambda m: m._state.user_strata.starts[:-1], "user_strata"),
        ("state_item_strata_starts", lambda m: m._state.item_strata.starts[::-1].copy(),
         "item_strata"),
        ("user_map_", lambda m: np.zeros(len(m.user_bias_), np.int64), "repeated ids"),
        ("user_map_", lambda m: m.user_map_.ids.astype(np.float64), "user_map_"),
        ("history__col0", lambda m: np.arange(7), "history_.epoch"),
    ],
)  # fmt: skip
def test_inconsistent_arrays_are_refused(tmp_path, entries, model, guard, label, make, match):
    arr = np.asarray(make(model))
    path = crafted(tmp_path, entries, members_change=swap_member(label, arr))
    err = refused(path, match)
    assert "truncated or corrupted" in str(err)


def test_the_manifest_declared_dtype_and_shape_are_checked(tmp_path, entries, model, guard):
    arr = model.user_factors_[:2]
    out = replace(entries, "arrays/user_factors_.npy", npy(arr))
    refused(write_zip(tmp_path / "bad", out), "declares shape")


@pytest.mark.parametrize(
    "shape, descr",
    [((2**40,), "<f4"), ((2**40, 4), "<f4"), ((2**62, 2**62), "<f8"), ((40, 4), "<f4")],
)
def test_huge_declared_shapes_allocate_nothing(tmp_path, entries, guard, shape, descr):
    member = npy_header(descr, shape, n_data=64)
    path = crafted(tmp_path, entries, members_change=lambda o: replace(
        o, "arrays/user_factors_.npy", member))  # fmt: skip
    tracemalloc.start()
    try:
        refused(path, "user_factors_")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB


@pytest.mark.parametrize(
    "header",
    [
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (-5, 4), }",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (40, 4.5), }",
        b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (40,), }",
        b"{'descr': 'O', 'fortran_order': False, 'shape': (40,), }",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os').system('x'), }",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (40, 4), 'extra': 1}",
        b"not a dict at all",
    ],
)
def test_malformed_npy_headers_are_refused(tmp_path, entries, guard, header):
    raw = header.ljust(118) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + bytes(640)
    path = crafted(tmp_path, entries, members_change=lambda o: replace(
        o, "arrays/user_factors_.npy", member))  # fmt: skip
    refused(path, "user_factors_.npy")


@pytest.mark.parametrize(
    "where, value, match",
    [
        ("global_mean_", {"t": "plain", "v": float("nan")}, "global_mean_"),
        ("global_mean_", {"t": "plain", "v": float("inf")}, "global_mean_"),
        ("global_mean_", {"t": "plain", "v": "3.5"}, "global_mean_"),
        ("global_mean_", {"t": "plain", "v": 10**400}, "global_mean_"),
        ("global_mean_", {"t": "np", "dtype": "<f4", "v": 10**400}, "global_mean_"),
        ("global_mean_", {"t": "np", "dtype": "<f2", "v": 1e10}, "global_mean_"),
        ("global_mean_", {"t": "np", "dtype": "|O", "v": 3}, "global_mean_"),
        ("global_mean_", {"t": "np", "dtype": "<f8", "v": [1]}, "global_mean_"),
        ("rating_scale_", {"t": "tuple", "items": [{"t": "plain", "v": 5}]}, "rating_scale_"),
        ("rating_scale_", {"t": "tuple", "items": [{"t": "plain", "v": 5.0},
                                                    {"t": "plain", "v": 1.0}]}, "rating_scale_"),
        ("n_epochs_done_", {"t": "plain", "v": -1}, "n_epochs_done_"),
        ("best_epoch_", {"t": "plain", "v": 99}, "best_epoch_"),
        ("item_titles_", {"t": "dict", "keys": [1], "plain": [{"a": 1}]}, "item_titles_"),
        ("item_titles_", {"t": "dict", "keys": [1, 2], "plain": ["x"]}, "item_titles_"),
        ("user_map_", {"t": "idmap", "ids": {"t": "objects", "dtype": "|O", "v": [[1]]}},
         "user_map_"),
        ("user_map_", {"t": "idmap", "ids": {"t": "objects", "dtype": "<f8", "v": [1.0]}},
         "user_map_"),
        ("history_", {"t": "frame", "columns": [{"name": "__class__", "data": {}}], "n_rows": 0},
         "history_"),
        ("history_", {"t": "frame", "columns": [], "n_rows": -3}, "n_rows"),
    ],
)  # fmt: skip
def test_bad_scalars_and_descriptions_are_refused(tmp_path, entries, guard, where, value, match):
    def change(m):
        m["attributes"][where] = value

    def drop_history(o):
        return [e for e in o if not e.name.startswith("arrays/history_")]

    drop = drop_history if where == "history_" else None
    refused(crafted(tmp_path, entries, change, drop), match)


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("learning_rate", {"t": "plain", "v": -1.0}, "learning_rate"),
        ("learning_rate", {"t": "plain", "v": float("nan")}, "learning_rate"),
        ("n_factors", {"t": "plain", "v": "x"}, "n_factors"),
        ("optimizer", {"t": "plain", "v": "os.system"}, "optimizer"),
        ("dtype", {"t": "plain", "v": "object"}, "dtype"),
        ("callbacks", {"t": "list", "items": [{"t": "plain", "v": "os.system"}]}, "callbacks"),
        ("lr_schedule", {"t": "dataclass", "class": "os:system", "fields": {}}, "lr_schedule"),
        ("evil", {"t": "plain", "v": 1}, "not a parameter"),
        ("reg", {"t": "plain", "v": 10**400}, "reg"),
        ("n_factors", {"t": "plain", "v": 10**400}, "n_factors"),
    ],
)
def test_bad_parameters_are_refused(tmp_path, entries, guard, name, value, match):
    def change(m):
        m["params"][name] = value

    refused(crafted(tmp_path, entries, change), match)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("n_factors", {"t": "plain", "v": 7}, "n_factors=7"),
        ("dtype", {"t": "plain", "v": "float64"}, "dtype float64"),
        ("biases", {"t": "plain", "v": "os.system"}, "biases"),
        ("n_factors", {"t": "plain", "v": 0}, "n_factors"),
        ("evil", {"t": "plain", "v": 1}, "may hold only"),
    ],
)
def test_shape_at_fit_must_agree_with_the_arrays(tmp_path, entries, guard, name, value, match):
    def change(m):
        m["train_state"]["fields"]["fit_params"]["items"][name] = value

    refused(crafted(tmp_path, entries, change), match)


def test_state_optimizer_must_agree_with_the_arrays(tmp_path, entries, guard):
    def change(m):
        m["train_state"]["fields"]["optimizer_name"] = {"t": "plain", "v": "sgd"}

    refused(crafted(tmp_path, entries, change), "optimizer='sgd'")

    def unknown(m):
        m["train_state"]["fields"]["optimizer_name"] = {"t": "plain", "v": "os.system"}

    refused(crafted(tmp_path, entries, unknown), "optimizer_name")


def test_parameters_changed_after_fit_are_kept_and_partial_fit_refuses_them(tmp_path):
    m = MatrixFactorization(n_factors=4, n_epochs=2, random_state=0, verbose=0)
    m.fit(random_ratings(30, 20, 200))
    m.set_params(n_factors=9, optimizer="adam")
    path = tmp_path / "m.fastmf"
    m.save(path)
    back = fastmf.load(path)
    assert back.n_factors == 9 and back.user_factors_.shape[1] == 4
    with pytest.raises(ValueError, match="n_factors was 4 at fit"):
        back.partial_fit(random_ratings(30, 20, 200))
    back.set_params(n_factors=4).partial_fit(random_ratings(30, 20, 200))
    assert back._state.optimizer_name == "adam"


def test_train_state_fields_are_a_closed_list(tmp_path, entries, guard):
    def extra(m):
        m["train_state"]["fields"]["blocks"] = {"t": "plain", "v": None}

    def missing(m):
        del m["train_state"]["fields"]["optimizer"]

    def plateau(m):
        m["train_state"]["fields"]["plateau_best"] = {"t": "plain", "v": float("nan")}

    refused(crafted(tmp_path, entries, extra, name="a"), "train_state.fields")
    refused(crafted(tmp_path, entries, missing, name="b"), "train_state.fields")
    refused(crafted(tmp_path, entries, plateau, name="c"), "plateau_best")


@pytest.mark.parametrize("text", [b"[" * 100_000, b'{"format": 1', b"\xff\xfe", b"null"])
def test_unparsable_manifests_are_refused(tmp_path, entries, guard, text):
    out = replace(entries, "manifest.json", text)
    refused(write_zip(tmp_path / "bad", out))


# --------------------------------------------------------------------------- the container


def test_missing_duplicate_and_extra_members_are_refused(tmp_path, entries, guard):
    missing = [e for e in entries if e.name != "arrays/user_bias_.npy"]
    refused(write_zip(tmp_path / "a", missing), "user_bias_")
    bias = next(e for e in entries if e.name == "arrays/user_bias_.npy")
    refused(write_zip(tmp_path / "b", [*entries, bias]), "appears twice")
    extra = [*entries, Entry("arrays/evil.npy", npy(np.zeros(3)))]
    refused(write_zip(tmp_path / "c", extra), "not described by the manifest")
    no_manifest = [e for e in entries if e.name != "manifest.json"]
    refused(write_zip(tmp_path / "d", no_manifest), "no manifest")
    marker = [Entry("fastmf-model", b"something else\n"), *entries[1:]]
    refused(write_zip(tmp_path / "e", marker), "marker")


def test_two_values_naming_one_member_are_refused(tmp_path, entries, guard):
    def change(m):
        m["attributes"]["item_bias_"]["member"] = "arrays/user_bias_.npy"

    refused(crafted(tmp_path, entries, change, lambda o: [
        e for e in o if e.name != "arrays/item_bias_.npy"]), "another value")  # fmt: skip


@pytest.mark.parametrize("method", [1, 6, 9, 12, 14, 93, 99, 65535])
def test_unknown_compression_methods_are_refused(tmp_path, entries, guard, method):
    out = [Entry(e.name, e.content, method=method if e.name.endswith(".npy") else 0,
                 raw=e.content) for e in entries]  # fmt: skip
    refused(write_zip(tmp_path / "bad", out), f"compression method {method}")


def test_encrypted_members_are_refused(tmp_path, entries, guard):
    out = [Entry(e.name, e.content, flags=1 if e.name.endswith(".npy") else 0) for e in entries]
    refused(write_zip(tmp_path / "bad", out), "encrypted")


def test_a_deflated_file_loads(tmp_path, entries, model):
    out = [Entry(e.name, e.content, method=8 if e.name != "fastmf-model" else 0) for e in entries]
    loaded = load(write_zip(tmp_path / "deflated", out))
    assert loaded.predict(np.array([[1, 2]])).tolist() == model.predict(np.array([[1, 2]])).tolist()


def bomb_cases(entries):
    """Deflated members expanding to 256 MiB: declared small, declared large, declared as what
    they expand to (an npy header of a consistent size, but the wrong shape), and a manifest."""
    target = "arrays/user_factors_.npy"
    good = next(e for e in entries if e.name == target)
    small = Entry(target, good.content, method=8, raw=deflated_zeros(256 * MB, good.content))
    zeros = deflated_zeros(256 * MB)
    large = Entry(target, good.content, method=8, raw=zeros[:1000], file_size=2**32 - 1)
    header = npy_header("<f4", (40, 1677721))
    big = deflated_zeros(40 * 1677721 * 4, header)
    exact = Entry(target, b"", method=8, raw=big, file_size=len(header) + 40 * 1677721 * 4, crc=0)
    manifest = Entry("manifest.json", b"", method=8, raw=zeros, file_size=100)
    return {
        "declared small": (replace_entry(entries, small), "inflates to more than"),
        "declared large": (replace_entry(entries, large), "more than deflate can expand"),
        "declared as expanded": (replace_entry(entries, exact), "user_factors_.*1677721"),
        "manifest": (replace_entry(entries, manifest), "inflates to more than"),
    }


def replace_entry(entries, new):
    return [new if e.name == new.name else e for e in entries]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["declared small", "declared large", "declared as expanded",
                                  "manifest"])  # fmt: skip
def test_zip_bombs_are_refused_without_inflating(tmp_path, entries, guard, case):
    members, reason = bomb_cases(entries)[case]
    path = write_zip(tmp_path / "bomb", members)
    tracemalloc.start()
    try:
        refused(path, reason)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MB


def test_a_crc_mismatch_is_refused(tmp_path, entries, guard):
    target = next(e for e in entries if e.name == "arrays/item_factors_.npy")
    out = replace_entry(entries, Entry(target.name, target.content, crc=zlib.crc32(b"other")))
    refused(write_zip(tmp_path / "bad", out), "CRC-32")


def test_overlapping_members_are_refused(tmp_path, entries, guard):
    path = write_zip(tmp_path / "ok", entries)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        a, b = zf.getinfo("arrays/user_bias_.npy"), zf.getinfo("arrays/item_bias_.npy")
    # point item_bias_'s directory entry at user_bias_'s local header
    at = data.find(b"arrays/item_bias_.npy", data.find(b"PK\x01\x02")) - 46 + 42
    assert data[at : at + 4] == b.header_offset.to_bytes(4, "little")
    data[at : at + 4] = a.header_offset.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    refused(path)


# --------------------------------------------------------------------------- not a file


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.fastmf"
    os.mkfifo(fifo)
    refused(fifo, "FIFO")  # returns: a blocking open would wait for a writer forever


def test_devices_and_folders_are_refused(tmp_path):
    refused("/dev/null", "character device")
    refused(tmp_path, "folder")


def test_a_symlink_to_a_model_loads(tmp_path, model):
    model.save(tmp_path / "real.fastmf")
    os.symlink(tmp_path / "real.fastmf", tmp_path / "link.fastmf")
    assert isinstance(load(tmp_path / "link.fastmf"), MatrixFactorization)


def test_every_refusal_is_a_value_error():
    assert (
        issubclass(fastmf.ModelFileError, ValueError)
        and fastmf.ModelFileError is ser.ModelFileError
    )


def test_a_file_without_training_state_loads_and_says_so_on_partial_fit(tmp_path, entries, model):
    def change(m):
        m["train_state"] = None

    def drop(o):
        return [e for e in o if not e.name.startswith("arrays/state_")]

    loaded = load(crafted(tmp_path, entries, change, drop))
    pairs = np.array([[1, 2], [3, 4]])
    assert loaded.predict(pairs).tolist() == model.predict(pairs).tolist()
    with pytest.raises(ValueError, match="no training state"):
        loaded.partial_fit(synthetic(40, 30, 900, random_state=3))


def test_a_deflated_manifest_expanding_too_much_is_refused(tmp_path, entries, guard):
    manifest = next(e for e in entries if e.name == "manifest.json")
    padded = manifest.content + b" " * (4 * MB)  # valid JSON, but 4 MB of spaces
    out = replace_entry(entries, Entry("manifest.json", padded, method=8))
    tracemalloc.start()
    try:
        refused(write_zip(tmp_path / "bad", out), "expand at most")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB


def test_too_many_members_are_refused(tmp_path, entries, guard):
    many = [*entries, *(Entry(f"x/{j}", b"") for j in range(5000))]
    refused(write_zip(tmp_path / "bad", many), "at most 4096")
