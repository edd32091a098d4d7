"""``tune.auto``: a budget that is a hard cap, a seeded search, validation carved from X only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization, tune
from fastmf.evaluate import _auto, _refits
from fastmf.evaluate._result import SearchResult
from tests.conftest import random_ratings


class FakeClock:
    """A clock that moves ``step`` seconds at every reading: the search sees time pass at a
    pace that does not depend on the machine, so budgets and results are exact."""

    def __init__(self, step: float = 0.05):
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


@pytest.fixture(autouse=True)
def no_probe(monkeypatch):
    """The fake clock's epochs are slow against these budgets: the searches below run without
    the first candidate's probe (tested on its own at the end)."""
    monkeypatch.setattr(_auto, "PROBE", 10**9)


@pytest.fixture
def df() -> pd.DataFrame:
    return random_ratings(80, 60, 2500, seed=3)


def _run(df, monkeypatch, budget=6.0, seed=0, **kw):
    clock = FakeClock()
    monkeypatch.setattr(_auto, "clock", clock)
    res = tune.auto(df, budget_seconds=budget, random_state=seed, verbose=0, **kw)
    return res, clock


def test_the_budget_is_a_hard_cap_on_the_clock(df, monkeypatch):
    for budget in (2.0, 6.0):
        res, clock = _run(df, monkeypatch, budget=budget)
        # the call returns before its deadline on the clock it was given (plus the readings
        # of the last epoch's checks, which move this clock by one step each)
        assert clock.t <= budget + 20 * clock.step
        assert isinstance(res, SearchResult) and res.best_estimator_ is not None
    small, _ = _run(df, monkeypatch, budget=2.0)
    large, _ = _run(df, monkeypatch, budget=6.0)
    assert len(large.results_) > len(small.results_)  # more time, more candidates


def test_same_seed_same_search_and_other_seed_differs(df, monkeypatch):
    a, _ = _run(df, monkeypatch, seed=4)
    b, _ = _run(df, monkeypatch, seed=4)
    c, _ = _run(df, monkeypatch, seed=5)
    drop = [col for col in a.results_.columns if "seconds" in col or col == "params"]
    pd.testing.assert_frame_equal(a.results_.drop(columns=drop), b.results_.drop(columns=drop))
    assert a.best_params_ == b.best_params_
    np.testing.assert_array_equal(a.best_estimator_.user_factors_, b.best_estimator_.user_factors_)
    assert not a.results_.drop(columns=drop).equals(c.results_.drop(columns=drop))


def test_the_first_candidate_is_the_data_aware_default(df, monkeypatch):
    params = []
    real_fit = MatrixFactorization.fit

    def spy(self, X, y=None, validation=None, item_titles=None):
        params.append(self.get_params())
        return real_fit(self, X, y, validation=validation, item_titles=item_titles)

    monkeypatch.setattr(MatrixFactorization, "fit", spy)
    res, _ = _run(df, monkeypatch)
    first = params[0]
    assert (first["n_factors"], first["reg"], first["learning_rate"]) == ("auto", "auto", None)
    refits = len(res.members_) if res.refit_seconds_ > 0 else 0
    assert len(params) == len(res.results_) + refits  # one fit per candidate, then the refits
    # the best, or the default when no candidate beats it by more than the validation noise
    best = res.results_["mean_val_rmse"].min()
    assert res.best_score_ == best or best > res.best_score_ * (1 - _auto.TIE)
    assert res.best_score_ in set(res.results_["mean_val_rmse"])


def test_validation_is_carved_from_x_and_the_refit_sees_all_of_x(df, monkeypatch):
    seen = []
    real_fit = MatrixFactorization.fit

    def spy(self, X, y=None, validation=None, item_titles=None):
        seen.append((X, validation))
        return real_fit(self, X, y, validation=validation, item_titles=item_titles)

    monkeypatch.setattr(MatrixFactorization, "fit", spy)
    held_out = random_ratings(80, 60, 300, seed=9)  # the caller's own test set
    res, _ = _run(df, monkeypatch, budget=30.0)
    assert res.refit_seconds_ > 0
    keys = set(zip(df.user, df.item, strict=True))
    outside = set(zip(held_out.user, held_out.item, strict=True)) - keys
    refits = len(res.members_)
    for X, val in seen[:-refits]:
        train = X.to_dataframe()
        train_keys = set(zip(train.user, train.item, strict=True))
        val_keys = set(zip(val.user, val.item, strict=True))
        assert train_keys <= keys and val_keys <= keys  # every rating comes from X
        assert not train_keys & val_keys  # and validation is apart from training
        assert not (train_keys | val_keys) & outside
        assert len(val_keys) == round(0.1 * len(df))
    for refit, val in seen[-refits:]:
        assert val is None and len(refit) == len(df)
    assert res.best_estimator_.n_epochs_done_ >= 1


def _member_params(res):
    return [{k: v for k, v in m.items() if k != "refit_seconds"} for m in res.members_]


def test_the_returned_model_is_the_average_of_its_members_refitted(df, monkeypatch):
    res, clock = _run(df, monkeypatch, budget=12.0)
    assert clock.t <= 12.0 + 20 * clock.step
    members = _member_params(res)
    assert len(members) > 1
    assert {k: v for k, v in members[0].items() if k != "random_state"} == res.best_params_
    assert len({m["random_state"] for m in members}) == len(members)  # a seed of its own
    settings = [{k: v for k, v in m.items() if k != "random_state"} for m in members]
    near = [dict(p) for p in res.results_["params"]] + [
        {**res.best_params_, **step} for step in _refits.neighbors(res.best_params_)
    ]
    assert all(p in near for p in settings)  # candidates of the search, or steps around the best
    fits = [MatrixFactorization(**m, verbose=0, n_jobs=-1).fit(df) for m in members]
    model = res.best_estimator_
    assert model.n_factors == model.n_factors_ == sum(m["n_factors"] for m in members)
    np.testing.assert_array_equal(model.predict(df), tune.average_models(fits).predict(df))


def test_ensemble_one_returns_the_best_candidates_refit_alone(df, monkeypatch):
    res, _ = _run(df, monkeypatch, budget=12.0, ensemble=1)
    (member,) = _member_params(res)
    assert res.best_estimator_.n_factors == res.best_params_["n_factors"]
    plain = MatrixFactorization(**member, verbose=0, n_jobs=-1).fit(df)
    np.testing.assert_array_equal(res.best_estimator_.user_factors_, plain.user_factors_)


def test_an_ensemble_cap_that_is_not_a_positive_int_is_refused(df):
    for bad in (True, 2.0, "8"):
        with pytest.raises(TypeError, match="ensemble"):
            tune.auto(df, budget_seconds=5, ensemble=bad)
    with pytest.raises(ValueError, match="ensemble"):
        tune.auto(df, budget_seconds=5, ensemble=0)


def test_progress_bar_over_candidates(df, monkeypatch, capsys):
    monkeypatch.setattr(_auto, "clock", FakeClock())
    tune.auto(df, budget_seconds=3.0, random_state=0, verbose=1)
    err = capsys.readouterr().err
    assert "candidate" in err and "best val RMSE" in err


def test_k_fold_cv_runs_candidates_on_every_split(df, monkeypatch):
    res, _ = _run(df, monkeypatch, budget=8.0, cv=3)
    assert res.n_splits == 3
    assert res.results_.loc[0, "splits_run"] == 3


@pytest.mark.parametrize("budget", [0, -1.0, float("nan"), float("inf")])
def test_a_budget_that_is_not_a_positive_number_is_refused(df, budget):
    with pytest.raises(ValueError, match="budget_seconds"):
        tune.auto(df, budget_seconds=budget)


def test_a_budget_of_the_wrong_kind_is_refused(df):
    with pytest.raises(TypeError, match="budget_seconds"):
        tune.auto(df, budget_seconds="60")
    with pytest.raises(ValueError, match="scoring"):
        tune.auto(df, scoring="r2")


def test_without_time_for_the_refit_the_best_candidate_is_returned_as_trained(df, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_auto, "clock", clock)
    # a refit that would take longer than any budget left
    monkeypatch.setattr(_auto, "_refit_estimate", lambda row, ratio: 1e9)
    res = tune.auto(df, budget_seconds=6.0, random_state=0, verbose=0)
    assert clock.t <= 6.0 + 20 * clock.step
    model = res.best_estimator_
    assert res.refit_seconds_ == 0.0 and model.n_epochs_done_ >= 1
    assert len(model.user_map_) <= df["user"].nunique()  # trained on the part without validation
    assert model.callbacks is None and not model.early_stopping
    assert np.isfinite(model.predict(df)).all()


def test_a_budget_too_short_for_the_defaults_and_their_refit_fits_the_defaults(df, monkeypatch):
    monkeypatch.setattr(_auto, "PROBE", 2)
    seen = []
    fit = MatrixFactorization.fit

    def spy(self, X, y=None, **kw):
        seen.append(len(X))
        return fit(self, X, y, **kw)

    monkeypatch.setattr(MatrixFactorization, "fit", spy)
    res, clock = _run(df, monkeypatch, budget=6.0)  # slower epochs than the budget holds
    assert clock.t <= 6.0 + 20 * clock.step
    assert len(res.results_) == 1 and res.results_["stopped"][0].startswith("stopped at epoch 2 of")
    assert seen[-1] == len(df)  # the defaults, fitted on all of X
    model = res.best_estimator_
    plain = MatrixFactorization(random_state=0, verbose=0).fit(df)
    assert res.best_params_ == {"reg": plain.reg_, "learning_rate": plain.learning_rate_,
                                "n_factors": plain.n_factors_, "reg_bias": 0.0,
                                "n_epochs": plain.n_epochs_}  # fmt: skip
    assert model.lr_schedule == "auto" and model.n_epochs == "auto"
    # the defaults first; steps around them when the time left holds them, averaged
    first = {k: v for k, v in res.members_[0].items() if k not in ("random_state", "refit_seconds")}
    assert first == res.best_params_
    assert model.n_factors_ == sum(m["n_factors"] for m in res.members_)


def test_a_budget_that_holds_the_defaults_runs_the_search(df, monkeypatch):
    monkeypatch.setattr(_auto, "PROBE", 2)
    res, _ = _run(df, monkeypatch, budget=40.0)
    assert len(res.results_) > 1


def test_a_candidate_that_diverges_is_ranked_last_and_the_search_goes_on(df, monkeypatch):
    draws = iter([{"learning_rate": 50.0}])
    real = _auto.draw

    def draw(rng, leader=None):
        cand = real(rng, leader)
        return {**cand, **next(draws, {})}  # the second candidate's rate makes it diverge

    monkeypatch.setattr(_auto, "draw", draw)
    res, _ = _run(df, monkeypatch, budget=8.0)
    table = res.results_
    assert len(table) > 2 and (table["stopped"] == "diverged").sum() == 1
    assert table.iloc[-1]["stopped"] == "diverged" and np.isinf(table.iloc[-1]["mean_val_rmse"])
    assert np.isfinite(res.best_score_) and np.isfinite(res.best_estimator_.predict(df)).all()
