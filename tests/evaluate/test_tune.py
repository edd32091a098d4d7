"""Tests of fastmf.evaluate.tune: grid and random search, their splits, and scikit-learn's
GridSearchCV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastmf.evaluate._cv import split_indices as _split_indices
from fastmf.evaluate.tune import SearchResult, grid_search, random_search


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    from fastmf.datasets import synthetic

    return synthetic(400, 500, 30_000, rank=8, noise=0.5, random_state=0)


def base_model(**params):
    from fastmf.model import MatrixFactorization

    # One thread: bit-identical to two (fastmf's promise), and quicker on a shared machine.
    settings = {
        "n_epochs": 8,
        "learning_rate": 0.01,
        "reg": 0.02,
        "lr_schedule": "constant",
        "random_state": 0,
        "verbose": 0,
        "n_jobs": 1,
    }
    settings.update(params)
    return MatrixFactorization(**settings)


def rmse_mae(model, data: pd.DataFrame) -> tuple[float, float]:
    err = model.predict(data) - data["rating"].to_numpy(dtype=np.float64)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))


# ---------------------------------------------------------------------------------------------
# Splits


def test_kfold_splits_partition_the_ratings() -> None:
    splits = _split_indices(103, 4, np.random.default_rng(0))
    assert len(splits) == 4
    val = np.concatenate([va for _, va in splits])
    np.testing.assert_array_equal(np.sort(val), np.arange(103))  # each rating validated once
    for tr, va in splits:
        assert len(np.intersect1d(tr, va)) == 0
        np.testing.assert_array_equal(np.union1d(tr, va), np.arange(103))
        assert len(va) in (25, 26)
    again = _split_indices(103, 4, np.random.default_rng(0))
    for (a, b), (c, d) in zip(splits, again, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_kfold_splits_are_fastmf_split_kfold_folds(ratings) -> None:
    from fastmf.split import kfold

    data = ratings.iloc[:1001].reset_index(drop=True)
    ours = _split_indices(len(data), 4, np.random.default_rng(3))
    theirs = list(kfold(data, 4, random_state=np.random.default_rng(3)))
    assert len(ours) == len(theirs) == 4
    for (tr, va), (train, val) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(tr, train.index.to_numpy())
        np.testing.assert_array_equal(va, val.index.to_numpy())


def test_holdout_fraction_split() -> None:
    [(tr, va)] = _split_indices(200, 0.15, np.random.default_rng(1))
    assert len(va) == 30 and len(tr) == 170
    np.testing.assert_array_equal(np.union1d(tr, va), np.arange(200))


@pytest.mark.parametrize(
    ("cv", "error", "match"),
    [
        (1, ValueError, "cv=1 folds is out of range"),
        (500, ValueError, "out of range"),
        (1.5, ValueError, r"must be in \(0, 1\)"),
        (0.0001, ValueError, "leaves 0 of 200"),
        (True, TypeError, "cv must be"),
        ("three", TypeError, "cv must be an int"),
        ([], ValueError, "no \\(train_idx, val_idx\\) pairs"),
        ([(np.arange(5), np.array([200]))], ValueError, "index 200 out of range"),
        ([(np.arange(5),)], ValueError, "split 0 is not a \\(train, validation\\) pair"),
        ([(np.arange(5), np.array([1.5]))], ValueError, "non-empty 1-d integer array"),
    ],
)
def test_bad_cv(cv, error, match) -> None:
    with pytest.raises(error, match=match):
        _split_indices(200, cv, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Grid search


def test_grid_search_table_matches_independent_fits(ratings) -> None:
    folds = _split_indices(len(ratings), 3, np.random.default_rng(7))
    grid = {"n_factors": [1, 16], "reg": [0.02, 0.1]}
    res = grid_search(ratings, grid, estimator=base_model(), cv=folds, refit=False)
    assert isinstance(res, SearchResult) and res.best_estimator_ is None
    t = res.results_
    assert len(t) == 4 and list(t["rank"]) == [1, 2, 3, 4]
    assert t["mean_val_rmse"].is_monotonic_increasing
    for col in ("mean_val_rmse", "std_val_rmse", "mean_val_mae", "mean_fit_seconds"):
        assert col in t.columns
    assert (t["mean_fit_seconds"] > 0).all() and (t["mean_epochs"] == 8).all()
    # Each candidate's figures equal a fit made here by hand on the same folds.
    for _, row in t.iterrows():
        rm, ma = zip(
            *(
                rmse_mae(base_model(**row["params"]).fit(ratings.iloc[tr]), ratings.iloc[va])
                for tr, va in folds
            ),
            strict=True,
        )
        np.testing.assert_allclose([row[f"split{k}_val_rmse"] for k in range(3)], rm, rtol=1e-12)
        assert row["mean_val_rmse"] == pytest.approx(np.mean(rm), rel=1e-12)
        assert row["std_val_rmse"] == pytest.approx(np.std(rm), rel=1e-9)
        assert row["mean_val_mae"] == pytest.approx(np.mean(ma), rel=1e-12)
    # On rank-8 data, 16 factors beat 1.
    assert res.best_params_["n_factors"] == 16
    assert res.best_score_ == t["mean_val_rmse"].iloc[0]


def test_refit_gives_the_best_model_on_all_data(ratings) -> None:
    est = base_model(verbose=1)
    res = grid_search(ratings, {"reg": [0.02, 0.5]}, estimator=est, cv=0.2, random_state=0)
    best = res.best_estimator_
    assert best.get_params()["reg"] == res.best_params_["reg"] == 0.02
    assert best.get_params()["verbose"] == 1  # the user's setting is kept on the result
    assert len(best.seen_items_) == len(ratings)  # trained on every rating
    ref = base_model(reg=0.02).fit(ratings)
    np.testing.assert_array_equal(best.predict(ratings), ref.predict(ratings))
    assert res.refit_seconds_ > 0
    assert "best RMSE" in str(res) and "SearchResult(n_candidates=2" in repr(res)


def test_scoring_mae_sorts_by_mae(ratings) -> None:
    res = grid_search(
        ratings, {"reg": [0.5, 0.02, 0.1]}, estimator=base_model(), cv=2, scoring="mae",
        random_state=0, refit=False,
    )  # fmt: skip
    assert res.results_["mean_val_mae"].is_monotonic_increasing
    assert res.best_score_ == res.results_["mean_val_mae"].iloc[0]


def test_list_of_grids_and_array_input(ratings) -> None:
    X = ratings[["user", "item"]].to_numpy()
    y = ratings["rating"].to_numpy()
    grid = [{"n_factors": [2], "reg": [0.05]}, {"n_factors": [8], "learning_rate": [0.01, 0.02]}]
    res = grid_search(X, grid, y=y, estimator=base_model(), cv=2, random_state=3, refit=False)
    assert len(res.results_) == 3
    assert sorted(map(str, res.results_["params"])) == sorted(
        map(str, [{"n_factors": 2, "reg": 0.05}, {"n_factors": 8, "learning_rate": 0.01},
                  {"n_factors": 8, "learning_rate": 0.02}])
    )  # fmt: skip


def test_same_seed_same_table(ratings) -> None:
    kw = {"estimator": base_model(random_state=None), "cv": 2, "random_state": 11, "refit": False}
    a = grid_search(ratings, {"reg": [0.02, 0.05]}, **kw).results_
    b = grid_search(ratings, {"reg": [0.02, 0.05]}, **kw).results_
    cols = ["reg", "mean_val_rmse", "split0_val_rmse", "split1_val_rmse"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_search_reuses_compiled_kernels(ratings) -> None:
    from numba.core.registry import CPUDispatcher

    from fastmf._kernels import training as _kernels
    from fastmf._kernels.jit import SizedKernel, WidthKernel

    # a factor width compiles its own epoch kernel once: 3 and 7 share the general one
    base_model(n_factors=3).fit(ratings.iloc[:2000]).predict(ratings.iloc[:10])
    kinds = (CPUDispatcher, SizedKernel, WidthKernel)
    dispatchers = {name: f for name, f in vars(_kernels).items() if isinstance(f, kinds)}
    assert {"sgd_epoch", "predict"} <= set(dispatchers)
    before = {name: len(f.signatures) for name, f in dispatchers.items()}
    assert before["sgd_epoch"] >= 1
    grid = {"n_factors": [3, 7], "reg": [0.0, 0.05], "learning_rate": [0.005], "n_epochs": [2, 3]}
    grid_search(ratings.iloc[:5000], grid, estimator=base_model(), cv=2, random_state=0)
    after = {name: len(f.signatures) for name, f in dispatchers.items()}
    assert after == before  # no new compilation for any searched value


def test_cv_takes_the_dataframe_pairs_of_fastmf_split(ratings) -> None:
    from fastmf.split import kfold

    data = ratings.iloc[:6000]
    folds = list(kfold(data, 3, random_state=0))
    res = grid_search(data, {"reg": [0.05]}, estimator=base_model(), cv=folds, refit=False)
    row = res.results_.iloc[0]
    for k, (tr, va) in enumerate(folds):
        rmse, _ = rmse_mae(base_model(reg=0.05).fit(tr), va)
        assert row[f"split{k}_val_rmse"] == pytest.approx(rmse, rel=1e-12)
    with pytest.raises(ValueError, match="not in X"):
        grid_search(data.iloc[:100], {"reg": [0.05]}, estimator=base_model(), cv=folds)


# ---------------------------------------------------------------------------------------------
# Random search


def test_random_search_over_lists_draws_distinct_candidates(ratings) -> None:
    dists = {"n_factors": [2, 4, 8], "reg": [0.01, 0.05]}
    res = random_search(ratings, dists, n_iter=4, estimator=base_model(), cv=2, random_state=5,
                        refit=False)  # fmt: skip
    params = [tuple(sorted(p.items())) for p in res.results_["params"]]
    assert len(params) == 4 and len(set(params)) == 4
    for p in res.results_["params"]:
        assert p["n_factors"] in (2, 4, 8) and p["reg"] in (0.01, 0.05)
    # Asking for more than the grid holds gives the grid once.
    res = random_search(ratings.iloc[:3000], dists, n_iter=50, estimator=base_model(), cv=2,
                        random_state=5, refit=False)  # fmt: skip
    assert len(res.results_) == 6


def test_random_search_with_distributions_is_seeded(ratings) -> None:
    stats = pytest.importorskip("scipy.stats")
    dists = {"reg": stats.loguniform(1e-3, 1e-1), "n_factors": stats.randint(2, 10)}
    kw = {"n_iter": 3, "estimator": base_model(), "cv": 0.25, "random_state": 2, "refit": False}
    a = random_search(ratings.iloc[:4000], dists, **kw)
    b = random_search(ratings.iloc[:4000], dists, **kw)
    assert list(map(str, a.results_["params"])) == list(map(str, b.results_["params"]))
    for p in a.results_["params"]:
        assert 1e-3 <= p["reg"] <= 1e-1
        assert type(p["n_factors"]) is int and 2 <= p["n_factors"] < 10


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_search_arguments(ratings) -> None:
    small = ratings.iloc[:500]
    est = base_model()
    with pytest.raises(ValueError, match=r"\['n_factor'\] is not a parameter"):
        grid_search(small, {"n_factor": [2]}, estimator=est)
    with pytest.raises(TypeError, match=r"param_grid\['reg'\] must be a list"):
        grid_search(small, {"reg": 0.1}, estimator=est)
    with pytest.raises(ValueError, match=r"param_grid\['reg'\] is empty"):
        grid_search(small, {"reg": []}, estimator=est)
    with pytest.raises(ValueError, match="scoring='r2' is not known"):
        grid_search(small, {"reg": [0.1]}, estimator=est, scoring="r2")
    with pytest.raises(ValueError, match="y must be None"):
        grid_search(small, {"reg": [0.1]}, y=small["rating"], estimator=est)
    with pytest.raises(ValueError, match="y \\(the ratings\\) is required"):
        grid_search(small[["user", "item"]].to_numpy(), {"reg": [0.1]}, estimator=est)
    with pytest.raises(ValueError, match="n_iter must be an int >= 1"):
        random_search(small, {"reg": [0.1]}, n_iter=0, estimator=est)
    with pytest.raises(TypeError, match="param_distributions must be"):
        random_search(small, {}, estimator=est)


def test_bad_data_fails_before_any_fit(ratings, monkeypatch) -> None:
    from fastmf.model import MatrixFactorization

    def no_fit(self, *args, **kwargs):
        raise AssertionError("fit was called on data the search should have refused")

    monkeypatch.setattr(MatrixFactorization, "fit", no_fit)
    bad = ratings.iloc[:500].copy()
    bad.loc[bad.index[7], "rating"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        grid_search(bad, {"reg": [0.1]}, estimator=base_model())
    twice = pd.concat([ratings.iloc[:300], ratings.iloc[:1]])
    with pytest.raises(ValueError, match="duplicate"):
        grid_search(twice, {"reg": [0.1]}, estimator=base_model())
    with pytest.raises(ValueError, match="rating"):
        grid_search(ratings[["user", "item"]], {"reg": [0.1]}, estimator=base_model())


def test_random_state_follows_the_package_rule(ratings) -> None:
    with pytest.raises(ValueError, match="random_state must be >= 0"):
        grid_search(ratings.iloc[:300], {"reg": [0.1]}, estimator=base_model(), random_state=-1)
    with pytest.raises(TypeError, match="random_state must be None, an int"):
        random_search(ratings.iloc[:300], {"reg": [0.1]}, estimator=base_model(), random_state="7")


def test_old_import_paths_are_the_new_objects() -> None:
    import importlib

    for old_path, new_path in (
        ("fastmf.tune", "fastmf.evaluate.tune"),
        ("fastmf.metrics", "fastmf.evaluate.metrics"),
        ("fastmf.diagnose", "fastmf.evaluate.diagnose"),
    ):
        old, new = importlib.import_module(old_path), importlib.import_module(new_path)
        assert old.__all__ and set(old.__all__) <= set(new.__all__)
        for name in old.__all__:
            assert getattr(old, name) is getattr(new, name)


# ---------------------------------------------------------------------------------------------
# scikit-learn


def test_matrix_factorization_inside_sklearn_grid_search_cv(ratings) -> None:
    model_selection = pytest.importorskip("sklearn.model_selection")
    X = ratings[["user", "item"]].to_numpy()
    y = ratings["rating"].to_numpy(dtype=np.float64)
    folds = list(model_selection.KFold(3, shuffle=True, random_state=0).split(X))
    grid = {"reg": [0.02, 0.5], "n_factors": [4, 16]}
    gs = model_selection.GridSearchCV(base_model(), grid, cv=folds).fit(X, y)
    ours = grid_search(X, grid, y=y, estimator=base_model(), cv=folds, refit=False)
    # The same folds give the same figures: score is the negative RMSE.
    for params, score in zip(
        gs.cv_results_["params"], gs.cv_results_["mean_test_score"], strict=True
    ):
        row = ours.results_[ours.results_["params"].map(lambda p, q=params: p == q)]
        assert -score == pytest.approx(row["mean_val_rmse"].iloc[0], rel=1e-12)
    assert gs.best_params_ == ours.best_params_
    assert gs.best_estimator_.get_params()["reg"] == ours.best_params_["reg"]
    np.testing.assert_array_equal(
        gs.predict(X[:50]), base_model(**ours.best_params_).fit(X, y).predict(X[:50])
    )


def test_sklearn_grid_search_on_a_ratings_dataframe(ratings) -> None:
    model_selection = pytest.importorskip("sklearn.model_selection")
    gs = model_selection.GridSearchCV(base_model(), {"reg": [0.02, 0.5]}, cv=2)
    gs.fit(ratings)
    assert gs.best_params_ == {"reg": 0.02}
    assert gs.best_score_ < 0  # negative RMSE
