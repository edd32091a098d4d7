"""Model files written by fastmf 0.1.0 load through the allowlist and predict exactly as saved."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastmf import MatrixFactorization, load, save
from fastmf.train.guard import optimizer_shapes
from fastmf.train.state import new_optimizer_state as _new_optimizer_state

GOLDEN = Path(__file__).parents[1] / "fixtures" / "models-0.1.0"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.model"))


def test_every_setting_has_a_golden_file():
    assert {"sgd", "sgd-batch", "adagrad-fixed", "adam-none-f64", "row_adagrad"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_golden_file_loads_and_predicts_as_saved(name, tmp_path):
    expected = json.loads((GOLDEN / f"{name}.expected.json").read_text())
    assert expected["fastmf_version"] == "0.1.0"
    model = load(GOLDEN / f"{name}.model")
    assert isinstance(model, MatrixFactorization)
    pairs = np.empty((len(expected["users"]), 2), dtype=object)
    pairs[:, 0], pairs[:, 1] = expected["users"], expected["items"]
    assert model.predict(pairs).tolist() == expected["predict"]
    assert model.predict(pairs, clip=False).tolist() == expected["predict_noclip"]
    assert model.n_epochs_done_ == expected["n_epochs_done"]
    assert model.best_epoch_ == expected["best_epoch"]
    # it saves again, through the same checks, and loads to the same predictions
    save(model, tmp_path / "again.fastmf")
    again = load(tmp_path / "again.fastmf")
    assert again.predict(pairs).tolist() == expected["predict"]
    with (
        zipfile.ZipFile(GOLDEN / f"{name}.model") as old,
        zipfile.ZipFile(tmp_path / "again.fastmf") as new,
    ):
        assert old.namelist() == new.namelist()  # the same layout as 0.1.0 wrote


@pytest.mark.parametrize("name", NAMES)
def test_golden_file_continues_training(name):
    model = load(GOLDEN / f"{name}.model")
    from tests.fixtures.make_models_0_1_0 import ratings

    before = model.predict(ratings(name))
    model.partial_fit(ratings(name))
    after = model.predict(ratings(name))
    assert np.isfinite(after).all() and not np.array_equal(before, after)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam", "row_adagrad"])
def test_optimizer_shapes_match_the_training_state(optimizer):
    P, Q = np.zeros((7, 3), np.float32), np.zeros((5, 3), np.float32)
    state = _new_optimizer_state(optimizer, P, Q)
    assert {k: v.shape for k, v in state.items()} == optimizer_shapes(optimizer, 7, 5, 3)
