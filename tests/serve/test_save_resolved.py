"""The values the "auto" parameters resolved to at fit are saved and come back on load."""

from __future__ import annotations

import json
import zipfile

import pytest

from fastmf import MatrixFactorization, load
from tests.conftest import random_ratings


def test_resolved_values_round_trip(tmp_path):
    df = random_ratings(50, 30, 700)
    m = MatrixFactorization(n_epochs=3, random_state=0, verbose=0).fit(df)
    m.save(tmp_path / "m.fastmf")
    back = load(tmp_path / "m.fastmf")
    assert back.get_params()["reg"] == "auto" and back.get_params()["n_factors"] == "auto"
    assert (back.n_factors_, back.n_epochs_, back.reg_) == (m.n_factors_, 3, m.reg_)
    back.partial_fit(df)  # "auto" continues at the fit's values
    m.partial_fit(df)
    assert back.predict(df).tobytes() == m.predict(df).tobytes()


def _rewrite(path, out, edit):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members["manifest.json"])
    edit(manifest["attributes"])
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("name", ["n_factors_", "n_epochs_", "reg_"])
def test_a_file_without_them_loads_with_them_rebuilt_from_numbers(tmp_path, name):
    df = random_ratings(50, 30, 700)
    m = MatrixFactorization(n_factors=5, n_epochs=2, reg=0.1, random_state=0, verbose=0).fit(df)
    m.save(tmp_path / "m.fastmf")
    _rewrite(tmp_path / "m.fastmf", tmp_path / "old.fastmf", lambda a: a.pop(name))
    back = load(tmp_path / "old.fastmf")
    assert (back.n_factors_, back.n_epochs_, back.reg_) == (5, 2, 0.1)


@pytest.mark.parametrize("name,value", [("n_factors_", 0), ("reg_", -1.0), ("n_epochs_", 1.5)])
def test_a_bad_resolved_value_is_refused_by_name(tmp_path, name, value):
    df = random_ratings(50, 30, 700)
    m = MatrixFactorization(n_epochs=2, random_state=0, verbose=0).fit(df)
    m.save(tmp_path / "m.fastmf")

    def spoil(attributes):
        attributes[name]["v"] = value

    _rewrite(tmp_path / "m.fastmf", tmp_path / "bad.fastmf", spoil)
    with pytest.raises(Exception, match=name):
        load(tmp_path / "bad.fastmf")
