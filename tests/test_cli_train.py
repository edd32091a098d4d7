"""``fastmf train``: the per-epoch table, the saved model, and its errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastmf
from fastmf.cli import main


def test_train_prints_a_row_per_epoch_and_saves(tmp_path, capsys):
    path = tmp_path / "model.fastmf"
    code = main(["train", "--n-epochs", "3", "--n-factors", "8", "--save", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(
        i
        for i, line in enumerate(lines)
        if line.split()[:4] == ["epoch", "base_loss", "reg_loss", "total_loss"]
    )
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    for r in rows:  # total = base + reg as printed
        assert float(r[3]) == pytest.approx(float(r[1]) + float(r[2]), abs=2e-4)
    assert "test RMSE" in out
    model = fastmf.load(path)
    assert model.n_epochs_done_ == 3 and model.n_factors == 8
    rmse = float(out.split("test RMSE ")[1].split()[0])
    assert rmse == pytest.approx(model.history_.val_rmse.iloc[-1], abs=1e-4)


def test_train_quiet_and_options(capsys):
    code = main(["train", "--n-epochs", "2", "--n-factors", "4", "--optimizer", "adam",
                 "--batch-size", "64", "--learning-rate", "0.01", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "base_loss" not in out and "test RMSE" in out


def test_unknown_dataset_is_a_clear_error(capsys):
    code = main(["train", "--dataset", "ml-7m", "--n-epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "ml-7m" in err


def test_bad_parameter_is_a_clear_error(capsys):
    code = main(["train", "--n-factors", "0"])
    assert code == 2 and "n_factors must be >= 1" in capsys.readouterr().err


def test_train_on_real_movielens(movielens_small_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FASTMF_HOME", str(tmp_path))
    code = main(["train", "--dataset", "ml-latest-small", "--n-epochs", "2", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    rmse = float(out.split("test RMSE ")[1].split()[0])
    assert 0.8 < rmse < 1.0


def test_python_dash_m_runs():
    out = subprocess.run(
        [sys.executable, "-m", "fastmf", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "train" in out.stdout


def test_cli_predictions_match_the_library(tmp_path, capsys):
    path = tmp_path / "m.fastmf"
    main(
        [
            "train",
            "--n-epochs",
            "2",
            "--n-factors",
            "4",
            "--seed",
            "3",
            "--save",
            str(path),
            "--quiet",
        ]
    )
    capsys.readouterr()
    from fastmf.cli.train import load_dataset
    from fastmf.split import train_test_split

    df, _ = load_dataset("synthetic-ml-100k", 3)
    train, test = train_test_split(df, test_size=0.1, random_state=3)
    lib = fastmf.MatrixFactorization(n_epochs=2, n_factors=4, random_state=3, verbose=0).fit(
        train, validation=test
    )
    np.testing.assert_array_equal(fastmf.load(path).predict(test), lib.predict(test))
