"""``fastmf tune``: a budgeted search from the shell that saves the best model."""

from __future__ import annotations

import json

import pytest

from fastmf import load
from fastmf.cli import main


def test_tune_saves_a_model_that_loads(tmp_path, capsys):
    out = tmp_path / "best.fastmf"
    code = main(["tune", "--dataset", "synthetic-ml-100k", "--budget", "15", "--quiet",
                 "--save", str(out), "--format", "json"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_candidates"] >= 1 and 0.5 < result["test_rmse"] < 1.2
    model = load(out)
    assert model.n_epochs_done_ >= 1
    assert set(result["best_params"]) >= {"reg", "learning_rate", "n_factors", "n_epochs"}
    # the saved model is the average of the members' refits: their factors side by side
    assert result["n_members"] >= 1 and model.n_factors_ == result["n_factors"]
    assert model.n_factors_ >= result["best_params"]["n_factors"]


def test_an_ensemble_cap_below_one_is_a_usage_error(capsys):
    assert main(["tune", "--dataset", "synthetic-ml-100k", "--ensemble", "0"]) == 2
    assert "--ensemble" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["0", "-3", "nan"])
def test_a_budget_that_cannot_work_is_a_usage_error(budget, capsys):
    assert main(["tune", "--dataset", "synthetic-ml-100k", "--budget", budget]) == 2
    assert "--budget" in capsys.readouterr().err


def test_an_unknown_dataset_is_a_usage_error(capsys):
    assert main(["tune", "--dataset", "no-such-data", "--budget", "5"]) == 2
    assert "--dataset" in capsys.readouterr().err
