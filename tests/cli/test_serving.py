"""``fastmf recommend``, ``fastmf similar`` and ``fastmf evaluate`` on a saved model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fastmf.cli import main
from fastmf.datasets.synthetic import synthetic
from fastmf.metrics import evaluate
from fastmf.model import MatrixFactorization


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A model trained on 80% of a synthetic data set, saved, and the whole set as a CSV file in
    MovieLens format."""
    folder = tmp_path_factory.mktemp("cli")
    df = synthetic(100, 60, 3000, random_state=5)
    rng = np.random.default_rng(0)
    test = rng.random(len(df)) < 0.2
    titles = {int(i): f"Movie number {i}" for i in df["item"].unique()}
    m = MatrixFactorization(n_factors=4, n_epochs=5, random_state=0, verbose=0)
    m.fit(df[~test], item_titles=titles)
    m.save(folder / "model.fastmf")
    csv = folder / "ratings.csv"
    df.rename(columns={"user": "userId", "item": "movieId"}).to_csv(csv, index=False)
    return folder, m, df, test


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMF_HOME", str(tmp_path / "home"))


def test_recommend_prints_the_users_list(workspace, capsys):
    folder, m, _, _ = workspace
    user = int(m.user_ids_[4])
    code = main(["recommend", "--model", str(folder / "model.fastmf"), "--user", str(user),
                 "-n", "4", "--format", "json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    expected = m.recommend(user, n=4)
    assert [r["item"] for r in rows] == expected["item"].tolist()
    np.testing.assert_allclose([r["score"] for r in rows], expected["score"], rtol=1e-6)
    assert rows[0]["title"] == m.item_titles_[rows[0]["item"]]


def test_recommend_table_and_unknown_user(workspace, capsys):
    folder, m, _, _ = workspace
    unknown = str(int(m.user_ids_.max()) + 1000)
    code = main(["recommend", "--model", str(folder / "model.fastmf"), "--user", unknown])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 10 + 2  # header, 10 items, the fallback note, the score note
    assert "not in the model's training data" in lines[-2]
    assert "not clipped" in lines[-1]
    fallback = m.recommend(int(unknown), n=10)
    assert [int(line.split()[1]) for line in lines[1:11]] == fallback["item"].tolist()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_recommend_fallback_is_flagged_in_every_format(workspace, capsys, fmt):
    folder, m, _, _ = workspace
    known, unknown = str(int(m.user_ids_[0])), str(int(m.user_ids_.max()) + 1000)
    flags = {}
    for user in (known, unknown):
        code = main(["recommend", "--model", str(folder / "model.fastmf"), "--user", user,
                     "-n", "3", "--format", fmt])  # fmt: skip
        captured = capsys.readouterr()
        assert code == 0
        if fmt == "csv":
            rows = pd.read_csv(__import__("io").StringIO(captured.out)).to_dict("records")
        else:
            rows = json.loads(captured.out)
        assert len(rows) == 3
        flags[user] = ({bool(r["fallback"]) for r in rows}, captured.err)
    assert flags[known][0] == {False} and "warning" not in flags[known][1]
    assert flags[unknown][0] == {True}
    assert "warning" in flags[unknown][1] and unknown in flags[unknown][1]


def test_recommend_scores_are_documented_as_unclipped(workspace, capsys):
    folder, m, _, _ = workspace
    user = int(m.user_ids_[1])
    assert main(["recommend", "--model", str(folder / "model.fastmf"), "--user", str(user)]) == 0
    out = capsys.readouterr().out
    low, high = m.rating_scale_
    assert "not clipped" in out and f"{low:g} to {high:g}" in out
    assert main(["recommend", "--help"]) == 0
    assert "not clipped" in " ".join(capsys.readouterr().out.split())


def test_text_that_cannot_be_an_id_is_an_error(workspace, capsys):
    folder, _m, _, _ = workspace
    code = main(["recommend", "--model", str(folder / "model.fastmf"), "--user", "abc"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "--user 'abc' cannot be an id of this model: its user ids" in captured.err
    code = main(["similar", "--model", str(folder / "model.fastmf"), "--item", "x1"])
    assert (
        code == 1
        and "--item 'x1' cannot be an id of this model: its item ids" in capsys.readouterr().err
    )


def test_similar_items_and_users(workspace, capsys):
    folder, m, _, _ = workspace
    item = int(m.item_ids_[2])
    assert main(["similar", "--model", str(folder / "model.fastmf"), "--item", str(item),
                 "-n", "3", "--format", "csv"]) == 0  # fmt: skip
    got = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    expected = m.similar_items(item, n=3)
    assert got["item"].tolist() == expected["item"].tolist()
    assert main(["similar", "--model", str(folder / "model.fastmf"), "--user",
                 str(m.user_ids_[0]), "-n", "2"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_similar_unknown_item_is_a_clean_error(workspace, capsys):
    folder, _, _, _ = workspace
    code = main(["similar", "--model", str(folder / "model.fastmf"), "--item", "123456789"])
    assert code == 1
    assert "unknown item 123456789" in capsys.readouterr().err


def test_evaluate_scores_the_held_out_ratings(workspace, capsys):
    folder, m, df, test = workspace
    code = main(["evaluate", "--model", str(folder / "model.fastmf"), "--dataset",
                 str(folder / "ratings.csv"), "-k", "5", "--json"])  # fmt: skip
    assert code == 0
    got = json.loads(capsys.readouterr().out)
    expected = evaluate(m, df[test], k=5)
    assert got["n_ratings"] == int(test.sum()) and got["n_ratings_total"] == len(df)
    for name in ("rmse", "mae", "precision", "recall", "ndcg", "hit_rate"):
        assert got[name] == pytest.approx(expected[name], rel=1e-6), name


def test_evaluate_table_output(workspace, capsys):
    folder, _, _, _ = workspace
    code = main(["evaluate", "--model", str(folder / "model.fastmf"), "--dataset",
                 str(folder / "ratings.csv")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    for label in ("RMSE", "MAE", "precision@10", "recall@10", "NDCG@10", "hit rate@10"):
        assert label in out


def test_bad_model_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.fastmf"
    bad.write_text("not a model")
    assert main(["recommend", "--model", str(bad), "--user", "1"]) == 1
    err = capsys.readouterr().err
    assert "not a fastmf model file" in err and len(err.strip().splitlines()) == 1
    assert main(["similar", "--model", str(tmp_path / "none"), "--item", "1"]) == 2
    assert f"--model {tmp_path / 'none'}: no such file" in capsys.readouterr().err


def test_evaluate_csv_and_the_json_alias_agree(workspace, capsys):
    folder, _, _, _ = workspace
    base = ["evaluate", "--model", str(folder / "model.fastmf"), "--dataset",
            str(folder / "ratings.csv"), "-k", "5"]  # fmt: skip
    assert main([*base, "--format", "csv"]) == 0
    row = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out)).iloc[0]
    assert main([*base, "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main([*base, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == as_json
    for name in ("rmse", "mae", "precision", "recall", "ndcg", "hit_rate", "n_ratings"):
        assert row[name] == pytest.approx(as_json[name], rel=1e-9), name


def test_diagnose_formats(workspace, capsys):
    folder, m, _, _ = workspace
    model = str(folder / "model.fastmf")
    assert main(["diagnose", "--model", model, "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = fastmf_diagnose(m)
    assert [f["code"] for f in got["findings"]] == expected.codes
    assert main(["diagnose", "--model", model, "--format", "csv"]) == 0
    rows = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert rows["code"].tolist() == expected.codes
    assert main(["diagnose", "--model", model]) == 0
    assert capsys.readouterr().out.strip() == str(expected).strip()


def fastmf_diagnose(model):
    from fastmf.diagnose import diagnose

    return diagnose(model)


@pytest.fixture
def no_loading(monkeypatch):
    """Make loading a model or a data set fail loudly: option refusals must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a file was loaded before the options were checked")

    monkeypatch.setattr("fastmf.serialize.load", refuse)
    monkeypatch.setattr("fastmf.datasets.load_movielens", refuse)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["evaluate", "--dataset", "ml-7m"], "'ml-7m' is neither a MovieLens release"),
        (["evaluate", "--dataset", "ml-latest-small", "-k", "0"], "expected an integer >= 1"),
        (["evaluate", "--dataset", "ml-latest-small", "--format", "xml"], "invalid choice"),
        (["recommend", "--user", "1", "-n", "0"], "expected an integer >= 1"),
        (["similar", "--item", "1", "-n", "-2"], "expected an integer >= 1"),
        (["diagnose", "--plot", "history.doc"], "has the suffix .doc"),
        (["diagnose", "--ratings", "/nonexistent/r.csv"], "--ratings /nonexistent/r.csv: no such"),
    ],
)
def test_serving_refusals_come_before_loading(workspace, no_loading, capsys, command, message):
    folder, _, _, _ = workspace
    code = main([command[0], "--model", str(folder / "model.fastmf"), *command[1:]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "before the options were checked" not in err
