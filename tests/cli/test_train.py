"""``fastmf train``: the per-epoch table, the saved model, and its errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastmf
from fastmf.cli import main
from tests.data.test_movielens import zip_with_compression


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
    assert code == 2 and "ml-7m" in err and "Traceback" not in err


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


# ------------------------------------------------------------------ refusals before any data


@pytest.fixture
def no_data(monkeypatch):
    """Make reading the data set fail loudly: an option refusal must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data set was read before the options were checked")

    monkeypatch.setattr("fastmf.cli.train.load_dataset", refuse)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--optimizer", "foo"], "invalid choice: 'foo'"),
        (["--biases", "some"], "invalid choice: 'some'"),
        (["--lr-schedule", "cosine"], "invalid choice: 'cosine'"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--test-size", "1.5"], "between 0 and 1"),
        (["--validation-size", "0"], "between 0 and 1"),
        (["--n-factors", "0"], "--n-factors 0: n_factors must be >= 1"),
        (["--n-factors", "1000000000000"], "lower --n-factors"),
        (["--learning-rate", "-1"], "learning_rate must be finite and > 0"),
        (["--lr-decay", "2"], "lr_decay must be <= 1.0"),
        (["--seed", "-3"], "--seed must be >= 0"),
        (["--dataset", "ml-7m"], "'ml-7m' is neither a MovieLens release"),
        (["--dataset", "synthetic-ml-7m"], "no such synthetic twin"),
        (["--save", "/nonexistent/dir/x.fastmf"], "'/nonexistent/dir' does not exist"),
        (["--plot", "out.txt"], "has the suffix .txt; matplotlib writes"),
        (["--plot", "/nonexistent/dir/run.png"], "'/nonexistent/dir' does not exist"),
    ],
)
def test_each_refusal_comes_before_the_data(no_data, capsys, options, message):
    code = main(["train", "--n-epochs", "1", *options])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "before the options were checked" not in err


def test_save_to_a_folder_is_refused(no_data, tmp_path, capsys):
    assert main(["train", "--save", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_plot_without_matplotlib_is_refused_first(no_data, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)  # import fails
    assert main(["train", "--plot", "run.png"]) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "fastmf[plot]" in err


def test_the_checks_let_good_options_through(no_data, tmp_path, capsys):
    code = main(["train", "--n-epochs", "1", "--save", str(tmp_path / "m.fastmf"),
                 "--plot", str(tmp_path / "run.svg"), "--optimizer", "adam"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "before the options were checked" in err  # the data was the first failure


# ------------------------------------------------------------------ runtime errors


def without_compile_notice(err: str) -> str:
    """stderr without the line a cold Numba cache adds before the first fit."""
    kept = [
        line for line in err.splitlines(keepends=True) if "compiling fastmf's kernels" not in line
    ]
    return "".join(kept)


def test_divergence_is_one_line_and_exit_1(capsys):
    code = main(["train", "--learning-rate", "100", "--n-epochs", "2", "--quiet"])
    err = without_compile_notice(capsys.readouterr().err)
    assert code == 1
    assert err.startswith("fastmf: error: training diverged") and err.count("\n") == 1
    assert "learning_rate" in err


def test_an_unreadable_zip_names_the_file(tmp_path, capsys):
    path = tmp_path / "ratings.zip"
    zip_with_compression(path, method=99)
    code = main(["train", "--dataset", str(path), "--n-epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("fastmf: error: ") and str(path) in err and err.count("\n") == 1


# ------------------------------------------------------------------ formats and early stopping


def test_csv_format_streams_the_epoch_rows(capsys):
    import io

    import pandas as pd

    assert main(["train", "--n-epochs", "3", "--n-factors", "4", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = pd.read_csv(io.StringIO(captured.out))  # stdout holds the CSV and nothing else
    assert rows["epoch"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(rows["total_loss"], rows["base_loss"] + rows["reg_loss"], rtol=1e-9)
    assert "test RMSE" in captured.err


def test_json_format_is_one_document(tmp_path, capsys):
    import json

    path = tmp_path / "m.fastmf"
    code = main(["train", "--n-epochs", "2", "--n-factors", "4", "--format", "json",
                 "--save", str(path)])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    model = fastmf.load(path)
    assert result["n_epochs_done"] == model.n_epochs_done_ == len(result["history"]) == 2
    assert result["params"]["n_factors"] == 4 and result["saved"] == str(path)
    assert result["test_rmse"] == pytest.approx(model.history_.val_rmse.iloc[-1], abs=1e-9)


def test_early_stopping_watches_a_part_of_the_training_ratings(tmp_path, capsys):
    from fastmf.cli.train import load_dataset
    from fastmf.split import train_test_split

    path = tmp_path / "m.fastmf"
    code = main(["train", "--n-epochs", "40", "--n-factors", "8", "--early-stopping",
                 "--patience", "2", "--seed", "4", "--save", str(path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    saved = fastmf.load(path)
    df, _ = load_dataset("synthetic-ml-100k", 4)
    train, test = train_test_split(df, test_size=0.1, random_state=4)
    test_rmse = float(np.sqrt(np.mean((saved.predict(test) - test["rating"].to_numpy()) ** 2)))
    assert float(out.split("test RMSE ")[1].split()[0]) == pytest.approx(test_rmse, abs=1e-4)
    # the watched error is not the test error: the history's validation part is another one
    watched = saved.history_.val_rmse.iloc[saved.best_epoch_ - 1]
    assert abs(watched - test_rmse) > 1e-4
    n_fit = int(out.split("training on ")[1].split()[0].replace(",", ""))
    assert n_fit == len(train) - int(np.ceil(0.1 * len(train)))
    assert "carved from the training ratings" in out


# ------------------------------------------------------------------ Numba's cache


def test_the_compile_notice_follows_the_cache(capsys, monkeypatch):
    from fastmf.cli import train as train_cli

    assert main(["train", "--n-epochs", "1", "--n-factors", "4", "--quiet"]) == 0
    capsys.readouterr()
    params = {"batch_size": 1, "optimizer": "sgd", "dtype": "float32"}
    assert train_cli.kernels_cached(params)  # the fit just compiled or loaded them
    monkeypatch.setattr("fastmf.cli._compile.kernels_cached", lambda params: False)
    assert main(["train", "--n-epochs", "1", "--n-factors", "4", "--quiet"]) == 0
    assert "compiling fastmf's kernels (first run only" in capsys.readouterr().err


def test_a_terminal_gets_a_progress_bar_beside_the_table(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["train", "--n-epochs", "3", "--n-factors", "4"]) == 0
    captured = capsys.readouterr()
    assert "3/3" in captured.err and "epoch" in captured.err  # tqdm's bar, on stderr
    rows = [line.split() for line in captured.out.splitlines() if line.split()[:1] == ["1"]]
    assert len(rows) == 1  # the table still has its rows, on stdout
    assert main(["train", "--n-epochs", "2", "--n-factors", "4", "--no-progress"]) == 0
    assert "2/2" not in capsys.readouterr().err


def test_the_lr_decay_help_says_what_the_model_does(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    claimed = text.split("--lr-decay LR_DECAY ")[1].split(" --")[0]
    assert "0.8 for exponential" in claimed and "0.5 for step and plateau" in claimed
    df = fastmf.datasets.synthetic(50, 40, 1200, random_state=0)
    for schedule, factor, kwargs in (("exponential", 0.8, {}), ("step", 0.5, {"lr_step_size": 1})):
        m = fastmf.MatrixFactorization(n_factors=2, n_epochs=3, lr_schedule=schedule, verbose=0,
                                       random_state=0, **kwargs).fit(df)  # fmt: skip
        lr = m.history_.learning_rate.to_numpy()
        np.testing.assert_allclose(lr[1:] / lr[:-1], factor, rtol=1e-12)
