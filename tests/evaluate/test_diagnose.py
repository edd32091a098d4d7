"""Tests of fastmf.evaluate.diagnose: each finding on a history made to show it, then on real
fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf.evaluate.diagnose import (
    CODES,
    IMPROVING,
    REG_HIGH_RATIO,
    REG_LOW_RATIO,
    RISE_SMALL,
    Diagnosis,
    bias_baseline,
    diagnose,
    history_frame,
)

# ---------------------------------------------------------------------------------------------
# Hand-made histories: each shaped to show one thing, with figures known in advance.


def make_history(
    train: np.ndarray,
    reg_loss: np.ndarray,
    val: np.ndarray | None = None,
    lr: float = 0.01,
) -> pd.DataFrame:
    train = np.asarray(train, dtype=float)
    base = train**2
    reg_loss = np.asarray(reg_loss, dtype=float)
    h = {
        "epoch": np.arange(1, len(train) + 1),
        "base_loss": base,
        "reg_loss": reg_loss,
        "total_loss": base + reg_loss,
        "train_rmse": train,
    }
    if val is not None:
        h["val_rmse"] = np.asarray(val, dtype=float)
        h["val_mae"] = 0.78 * h["val_rmse"]
    h["learning_rate"] = np.full(len(train), lr)
    h["seconds"] = np.full(len(train), 0.05)
    return pd.DataFrame(h)


EPOCHS = np.arange(1, 21)
FALLING_TRAIN = 0.6 + 0.5 * np.exp(-EPOCHS / 4)  # converges to 0.6
GROWING_REG = 0.04 * (1 - 0.8 * np.exp(-EPOCHS / 3))  # rises from ~0.01 to 0.04


def test_overfitting_names_best_epoch_and_rise() -> None:
    val = np.where(EPOCHS <= 10, 0.95 - 0.01 * EPOCHS, 0.85 + 0.004 * (EPOCHS - 10))
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG, val), params={"reg": 0.02})
    f = d.get("overfitting")
    assert f is not None and f.severity == "warning"
    assert f.figures["best_epoch"] == 10
    assert f.figures["best_val_rmse"] == pytest.approx(0.85)
    assert f.figures["last_val_rmse"] == pytest.approx(0.89)
    assert f.figures["rise"] == pytest.approx(0.04 / 0.85)
    assert "0.8500 at epoch 10" in f.message and "0.8900 at epoch 20" in f.message
    assert any("raise reg (now reg=0.02)" in a for a in f.advice)
    assert any("n_epochs=10" in a for a in f.advice)
    # Overfitting and plateau/still-improving describe the same curve: only one is said.
    assert "plateau" not in d and "still_improving" not in d


def test_small_wobble_after_best_is_not_overfitting() -> None:
    val = 0.9 - 0.05 * (1 - np.exp(-EPOCHS / 3))
    val[-1] = val[-2] * (1 + RISE_SMALL / 2)
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG, val))
    assert "overfitting" not in d
    assert "plateau" in d


def test_overfitting_needs_the_training_error_to_fall() -> None:
    # Validation rises but the training error rises with it: not overfitting (unstable).
    train = 0.6 + 0.004 * EPOCHS
    val = 0.85 + 0.004 * EPOCHS
    d = diagnose(make_history(train, GROWING_REG, val))
    assert "overfitting" not in d
    # Nor when the training error stands nearly still (0.05% lower) as validation drifts up.
    train = 0.7 - 0.0005 * 0.7 * (EPOCHS > 10)
    val = np.where(EPOCHS <= 10, 0.95 - 0.01 * EPOCHS, 0.85 * (1 + RISE_SMALL * (EPOCHS - 10)))
    assert "overfitting" not in diagnose(make_history(train, GROWING_REG, val))
    falling = train - 0.003 * np.maximum(EPOCHS - 10, 0)  # 4% lower by epoch 20
    assert "overfitting" in diagnose(make_history(falling, GROWING_REG, val))


def test_still_improving_when_validation_falls_fast() -> None:
    val = 1.0 - 0.01 * EPOCHS  # 1% per epoch at the end, well over the threshold
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG, val), params={"n_epochs": 20})
    f = d.get("still_improving")
    assert f is not None
    w = int(f.figures["window"])
    assert w == 7  # a third of the 20 epochs, plus one
    slope = np.polyfit(np.arange(w), val[-w:], 1)[0]
    expected = -slope / val[-w:].mean()
    assert f.figures["fall_per_epoch"] == pytest.approx(expected)
    assert expected > IMPROVING
    assert any("now n_epochs=20" in a for a in f.advice)
    assert "plateau" not in d and "underfitting" not in d


def test_plateau_when_validation_is_flat() -> None:
    val = 0.86 + 0.1 * np.exp(-EPOCHS)  # flat after a few epochs
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG, val))
    assert "plateau" in d
    assert abs(d.get("plateau").figures["fall_per_epoch"]) <= IMPROVING
    assert "still_improving" not in d


def test_without_validation_the_training_curve_is_read() -> None:
    d = diagnose(make_history(1.0 - 0.01 * EPOCHS, GROWING_REG))
    assert "still_improving" in d
    assert "training RMSE" in d.get("still_improving").message
    assert "overfitting" not in d


def test_underfitting_against_the_bias_only_model() -> None:
    # Data whose ratings are exactly mu + b_u + b_i plus noise: the bias-only model is the best
    # one, and a training RMSE at its level means the factors add nothing.
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    items = rng.integers(0, 40, size=users.size)
    data = pd.DataFrame({"user": users, "item": items})
    data = data.drop_duplicates().reset_index(drop=True)
    data["rating"] = 3.5 + rng.normal(0, 0.3, 50)[data.user] + rng.normal(0, 0.3, 40)[data.item]
    data["rating"] += rng.normal(0, 0.5, len(data))
    _, bias_rmse = bias_baseline(data)
    flat = np.full(20, bias_rmse * 0.99)
    flat[:3] = [1.2, 1.0, bias_rmse]
    val = flat * 1.02
    d = diagnose(make_history(flat, np.full(20, 1e-3), val), data, params={"n_factors": 2})
    f = d.get("underfitting")
    assert f is not None and f.severity == "warning"
    assert f.figures["gain_over_bias"] == pytest.approx(0.01, abs=1e-9)
    assert any("more factors (now n_factors=2)" in a for a in f.advice)
    assert "bias-only" in f.message
    # The same history, trained to well below the bias-only model, is not underfitting.
    d2 = diagnose(make_history(flat * 0.8, np.full(20, 1e-3), val), data)
    assert "underfitting" not in d2


def test_underfitting_without_data_uses_the_train_val_gap() -> None:
    train = np.full(20, 0.90)
    train[:2] = [1.1, 0.95]
    val = train * 1.01
    d = diagnose(make_history(train, np.full(20, 0.01), val))
    f = d.get("underfitting")
    assert f is not None
    assert f.figures["train_val_gap"] == pytest.approx(1 - 1 / 1.01)
    assert "pass data=" in f.message
    # A normal gap (train well below validation) is not underfitting.
    assert "underfitting" not in diagnose(make_history(train * 0.8, np.full(20, 0.01), val))


def test_underfitting_is_not_said_while_still_improving() -> None:
    train = 1.0 - 0.01 * EPOCHS
    d = diagnose(make_history(train, np.full(20, 0.01), train * 1.01))
    assert "still_improving" in d and "underfitting" not in d


def test_reg_dominates_by_ratio() -> None:
    reg_loss = np.full(20, 0.3)
    d = diagnose(make_history(np.full(20, 0.5), reg_loss), params={"reg": 1.0})
    f = d.get("reg_dominates")
    assert f is not None
    assert f.figures["reg_ratio"] == pytest.approx(0.3 / 0.25)
    assert f.figures["reg_ratio"] >= REG_HIGH_RATIO
    assert "120.0% of the base loss" in f.message
    assert any("lower reg (now reg=1.0" in a for a in f.advice)
    # Below the threshold the ratio is only reported.
    assert "reg_dominates" not in diagnose(make_history(np.full(20, 0.7), reg_loss))


def test_high_ratio_from_an_overfit_base_loss_is_not_reg_dominating() -> None:
    # The model memorizes its training ratings: the base loss collapses, so the ratio is large,
    # but the penalty is too weak, not too strong.
    train = 0.05 + 0.7 * np.exp(-EPOCHS / 3)
    val = np.where(EPOCHS <= 5, 0.95 - 0.02 * EPOCHS, 0.85 + 0.01 * (EPOCHS - 5))
    d = diagnose(make_history(train, GROWING_REG, val))
    assert d.summary["reg_ratio"] > REG_HIGH_RATIO
    assert "overfitting" in d and "reg_dominates" not in d
    assert "driven toward zero" in d.get("overfitting").message


def test_reg_dominates_when_the_penalty_shrinks_the_factors() -> None:
    reg_loss = 0.05 * np.exp(-EPOCHS / 4)  # falls to a small fraction of its start
    d = diagnose(make_history(np.full(20, 0.85), reg_loss))
    f = d.get("reg_dominates")
    assert f is not None
    assert f.figures["reg_ratio"] < REG_HIGH_RATIO
    assert "shrinking the factors" in f.message
    assert "rising_reg_normal" not in d


def test_a_reg_loss_growing_again_after_a_wild_first_epoch_is_not_shrinking() -> None:
    reg_loss = np.concatenate([[0.6, 0.2, 0.1], 0.1 + 0.002 * np.arange(17)])
    d = diagnose(make_history(FALLING_TRAIN, reg_loss))
    assert "reg_dominates" not in d


def test_reg_negligible_and_its_advice_under_overfitting() -> None:
    reg_loss = 0.001 * (1 - 0.5 * np.exp(-EPOCHS / 3))
    d = diagnose(make_history(FALLING_TRAIN, reg_loss), params={"reg": 0.0005})
    f = d.get("reg_negligible")
    assert f is not None and f.severity == "info" and f.advice == ()
    assert f.figures["reg_ratio"] == pytest.approx(reg_loss[-1] / FALLING_TRAIN[-1] ** 2)
    assert f.figures["reg_ratio"] < REG_LOW_RATIO
    val = np.where(EPOCHS <= 8, 0.95 - 0.01 * EPOCHS, 0.87 + 0.005 * (EPOCHS - 8))
    d2 = diagnose(make_history(FALLING_TRAIN, reg_loss, val), params={"reg": 0.0005})
    f2 = d2.get("reg_negligible")
    assert f2.severity == "warning" and "too small" in f2.message
    assert any("raise reg (now reg=0.0005" in a for a in f2.advice)


def test_reg_zero_is_said_plainly() -> None:
    d = diagnose(make_history(FALLING_TRAIN, np.zeros(20)), params={"reg": 0.0})
    assert "reg is 0" in d.get("reg_negligible").message


def test_rising_reg_with_falling_validation_is_normal() -> None:
    val = 0.95 - 0.08 * (1 - np.exp(-EPOCHS / 3))
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG, val))
    f = d.get("rising_reg_normal")
    assert f is not None and f.severity == "ok"
    assert f.figures["first_reg_loss"] == pytest.approx(GROWING_REG[0])
    assert f.figures["val_rmse"] < f.figures["first_val_rmse"]
    assert "normal" in f.message
    # A rising reg loss while validation error rises from the start is not called normal.
    d2 = diagnose(make_history(FALLING_TRAIN, GROWING_REG, 0.85 + 0.005 * EPOCHS))
    assert "rising_reg_normal" not in d2 and "overfitting" in d2


def test_rising_reg_without_validation_says_what_it_cannot_see() -> None:
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG))
    f = d.get("rising_reg_normal")
    assert f is not None and "validation_fraction" in f.message


def test_unstable_when_training_loss_rises_or_diverges() -> None:
    train = 0.8 + 0.02 * EPOCHS
    d = diagnose(make_history(train, GROWING_REG), params={"learning_rate": 0.3})
    f = d.get("unstable")
    assert f is not None and any("now learning_rate=0.3" in a for a in f.advice)
    h = make_history(FALLING_TRAIN, GROWING_REG)
    h.loc[12:, "base_loss"] = np.nan
    d2 = diagnose(h)
    assert d2.codes == ["unstable"] and d2.get("unstable").figures["epoch"] == 13


def test_report_lists_findings_in_order_with_figures() -> None:
    val = np.where(EPOCHS <= 10, 0.95 - 0.01 * EPOCHS, 0.85 + 0.004 * (EPOCHS - 10))
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG, val), params={"reg": 0.02})
    text = str(d)
    assert text.startswith("fastmf diagnosis of 20 epoch(s)")
    assert "reg=0.02" in text
    assert "val RMSE 0.8900 (best 0.8500 at epoch 10)" in text
    assert text.index("overfitting") < text.index("rising_reg_normal")
    assert [c for c in CODES if c in d] == d.codes
    assert repr(d) == f"Diagnosis(codes={d.codes!r})"
    assert len(d) == len(list(d))


def test_few_epochs_say_too_few_to_judge() -> None:
    d = diagnose(make_history([1.0, 0.9], [0.01, 0.012], [1.0, 0.95]))
    assert "too few to judge" in str(d)
    assert "plateau" not in d and "still_improving" not in d


def test_history_frame_fills_derived_columns_and_drops_empty_validation() -> None:
    h = pd.DataFrame({"base_loss": [1.0, 0.81], "reg_loss": [0.1, 0.2], "val_rmse": np.nan})
    out = history_frame(h)
    assert list(out.columns) == ["epoch", "base_loss", "reg_loss", "total_loss", "train_rmse"]
    np.testing.assert_allclose(out["train_rmse"], [1.0, 0.9])
    np.testing.assert_allclose(out["total_loss"], [1.1, 1.01])
    np.testing.assert_array_equal(out["epoch"], [1, 2])


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['reg_loss'\]"):
        diagnose(pd.DataFrame({"base_loss": [1.0]}))
    with pytest.raises(ValueError, match="history is empty"):
        diagnose(make_history([], []))
    with pytest.raises(TypeError, match="model_or_history must be"):
        diagnose(42)

    class Unfitted:
        def get_params(self) -> dict:
            return {}

    with pytest.raises(ValueError, match="not fitted"):
        diagnose(Unfitted())
    with pytest.raises(ValueError, match="lacks the column"):
        diagnose(make_history(FALLING_TRAIN, GROWING_REG), pd.DataFrame({"user": [1]}))
    with pytest.raises(TypeError, match="data must be"):
        diagnose(make_history(FALLING_TRAIN, GROWING_REG), [1, 2, 3])


def test_diagnosis_is_a_plain_object() -> None:
    d = diagnose(make_history(FALLING_TRAIN, GROWING_REG))
    assert isinstance(d, Diagnosis)
    assert d.summary["train_rmse"] == pytest.approx(FALLING_TRAIN[-1])
    assert d.summary["reg_ratio"] == pytest.approx(GROWING_REG[-1] / FALLING_TRAIN[-1] ** 2)


# ---------------------------------------------------------------------------------------------
# The bias-only baseline against an independent least-squares solve.


def test_bias_baseline_matches_least_squares() -> None:
    rng = np.random.default_rng(3)
    n_u, n_i = 30, 25
    pairs = rng.choice(n_u * n_i, size=300, replace=False)
    users, items = pairs // n_i, pairs % n_i
    r = rng.normal(3.5, 1.0, size=300)
    df = pd.DataFrame({"user": users + 100, "item": items * 7, "rating": r})
    std, rmse = bias_baseline(df, damping=0.0, n_sweeps=400)
    assert std == pytest.approx(np.std(r))
    # Reference: min ||r - mu - A b||, A the user and item indicator columns.
    A = np.zeros((300, n_u + n_i))
    A[np.arange(300), users] = 1.0
    A[np.arange(300), n_u + items] = 1.0
    coef, *_ = np.linalg.lstsq(A, r - r.mean(), rcond=None)
    ref = np.sqrt(np.mean((r - r.mean() - A @ coef) ** 2))
    assert rmse == pytest.approx(ref, rel=1e-6)
    # Damping shrinks the biases, so the in-sample error can only grow.
    assert bias_baseline(df, damping=5.0)[1] > ref


def test_bias_baseline_accepts_a_ratings_container() -> None:
    class R:
        users = np.array([0, 0, 1, 1], dtype=np.int32)
        items = np.array([0, 1, 0, 1], dtype=np.int32)
        values = np.array([5.0, 3.0, 3.0, 1.0], dtype=np.float32)

    # An exact additive grid: biases explain everything.
    std, rmse = bias_baseline(R(), damping=0.0, n_sweeps=50)
    assert std == pytest.approx(np.std([5.0, 3.0, 3.0, 1.0]))
    assert rmse == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Real fits built to show each finding. The data: rank-8 ratings with noise 0.5 (best RMSE about
# 0.51, bias-only about 0.69), so a model that uses its factors is far from one that does not.


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    from fastmf.datasets import synthetic

    return synthetic(600, 800, 60_000, rank=8, noise=0.5, random_state=0)


@pytest.fixture(scope="module")
def small_ratings() -> pd.DataFrame:
    from fastmf.datasets import synthetic

    return synthetic(200, 300, 8_000, rank=8, noise=0.5, random_state=1)


def fit(data: pd.DataFrame, **params):
    from fastmf.model import MatrixFactorization

    # One thread: bit-identical to two (fastmf's promise), and quicker on a shared machine.
    settings = {
        "learning_rate": 0.01,
        "reg": 0.02,
        "lr_schedule": "constant",
        "init_std": 0.1,
        "validation_fraction": 0.1,
        "random_state": 0,
        "verbose": 0,
        "n_jobs": 1,
    }
    settings.update(params)
    return MatrixFactorization(**settings).fit(data)


def test_real_too_much_reg_is_reg_dominating_and_underfitting(ratings) -> None:
    model = fit(ratings, n_factors=16, n_epochs=15, reg=1.0)
    h = model.history_
    d = diagnose(model, ratings)
    assert "reg_dominates" in d and "underfitting" in d
    assert "overfitting" not in d and "rising_reg_normal" not in d
    f = d.get("reg_dominates")
    assert f.figures["first_reg_loss"] == pytest.approx(h["reg_loss"].iloc[0])
    assert f.figures["last_reg_loss"] < 0.5 * f.figures["first_reg_loss"]
    u = d.get("underfitting")
    _, bias_rmse = bias_baseline(ratings)
    assert u.figures["bias_rmse"] == pytest.approx(bias_rmse)
    assert u.figures["gain_over_bias"] == pytest.approx(1 - h["train_rmse"].iloc[-1] / bias_rmse)
    assert any("lower reg" in a and "reg=1.0" in a for a in u.advice)
    # Without the data the train/validation gap says the same.
    assert "underfitting" in diagnose(model)


def test_real_too_few_factors_is_underfitting(ratings) -> None:
    d = diagnose(fit(ratings, n_factors=1, n_epochs=30, reg=0.02), ratings)
    u = d.get("underfitting")
    assert u is not None and "overfitting" not in d
    assert any("more factors (now n_factors=1)" in a for a in u.advice)
    # The same run with enough factors uses them: far below the bias-only model.
    d16 = diagnose(fit(ratings, n_factors=16, n_epochs=30, reg=0.05), ratings)
    assert "underfitting" not in d16
    assert d16.summary["train_rmse"] < 0.8 * d16.summary["bias_rmse"]


def test_real_healthy_run_calls_the_rising_reg_loss_normal(ratings) -> None:
    model = fit(ratings, n_factors=16, n_epochs=30, reg=0.05)
    h = model.history_
    d = diagnose(model, ratings)
    assert {"overfitting", "underfitting", "reg_dominates", "reg_negligible"}.isdisjoint(d.codes)
    f = d.get("rising_reg_normal")
    assert f is not None
    # The run itself shows it: reg loss up several-fold while validation RMSE went down.
    assert h["reg_loss"].iloc[-1] > 3 * h["reg_loss"].iloc[0]
    assert h["val_rmse"].min() < h["val_rmse"].iloc[0] - 0.05
    assert f.figures["first_reg_loss"] == pytest.approx(h["reg_loss"].iloc[0])
    assert ("plateau" in d) != ("still_improving" in d)


def test_real_too_many_epochs_on_small_data_overfits(small_ratings) -> None:
    model = fit(small_ratings, n_factors=32, n_epochs=60, reg=0.0)
    h = model.history_
    d = diagnose(model, small_ratings, params={"early_stopping": False})
    f = d.get("overfitting")
    assert f is not None
    best = int(h["val_rmse"].idxmin())
    assert f.figures["best_epoch"] == h["epoch"].iloc[best] < 60
    assert f.figures["last_val_rmse"] == pytest.approx(h["val_rmse"].iloc[-1])
    assert h["train_rmse"].iloc[-1] < h["train_rmse"].iloc[best]
    assert any(f"n_epochs={h['epoch'].iloc[best]}" in a for a in f.advice)
    # reg=0 is named as the missing brake, as a warning with advice.
    neg = d.get("reg_negligible")
    assert neg.severity == "warning" and "reg is 0" in neg.message
    assert "plateau" not in d and "still_improving" not in d


def test_real_early_stopping_run_is_reported_as_restored(small_ratings) -> None:
    model = fit(small_ratings, n_factors=32, n_epochs=60, reg=0.0, early_stopping=True)
    assert model.best_epoch_ is not None and model.n_epochs_done_ < 60
    d = diagnose(model)
    assert f"early stopping restored the model of epoch {model.best_epoch_}" in str(d)


def test_real_too_few_epochs_is_still_improving(ratings) -> None:
    d = diagnose(fit(ratings, n_factors=16, n_epochs=5, reg=0.05), ratings)
    f = d.get("still_improving")
    assert f is not None and f.figures["fall_per_epoch"] > IMPROVING
    assert any("now n_epochs=5" in a for a in f.advice)
    assert "underfitting" not in d and "plateau" not in d


def test_real_converged_run_is_a_plateau(ratings) -> None:
    model = fit(
        ratings, n_factors=16, n_epochs=30, reg=0.05, learning_rate=0.02,
        lr_schedule="exponential", lr_decay=0.9,
    )  # fmt: skip
    h = model.history_
    d = diagnose(model, ratings)
    f = d.get("plateau")
    assert f is not None and "still_improving" not in d and "overfitting" not in d
    w = int(f.figures["window"])
    slope = np.polyfit(np.arange(w), h["val_rmse"].to_numpy()[-w:], 1)[0]
    assert f.figures["fall_per_epoch"] == pytest.approx(-slope / h["val_rmse"].iloc[-w:].mean())
    assert f.figures["fall_per_epoch"] < IMPROVING
    assert "underfitting" not in d  # flat, but far below the bias-only model


def test_real_noise_free_data_makes_the_penalty_dominate() -> None:
    from fastmf.datasets import synthetic

    clean = synthetic(600, 800, 60_000, rank=8, noise=0.0, scale=None, random_state=0)
    model = fit(clean, n_factors=8, n_epochs=30, reg=0.05)
    h = model.history_
    d = diagnose(model, clean)
    f = d.get("reg_dominates")
    assert f is not None and "overfitting" not in d
    assert f.figures["reg_ratio"] == pytest.approx(h["reg_loss"].iloc[-1] / h["base_loss"].iloc[-1])
    assert f.figures["reg_ratio"] >= REG_HIGH_RATIO
    assert "the penalty, not the ratings" in f.message


def test_real_too_high_learning_rate_is_unstable(ratings) -> None:
    from fastmf._validation import NonFiniteModelError

    # 0.15 sits at the edge of divergence: take the first seed whose run stays finite.
    for seed in range(5):
        try:
            model = fit(ratings, n_factors=16, n_epochs=12, reg=0.05, learning_rate=0.15,
                        random_state=seed)  # fmt: skip
            break
        except NonFiniteModelError:
            continue
    else:
        pytest.fail("learning_rate=0.15 diverged for every seed; the test needs a finite run")
    h = model.history_
    d = diagnose(model, ratings)
    f = d.get("unstable")
    assert f is not None and d.codes[0] == "unstable"
    low = int(h["base_loss"].rolling(3, center=True, min_periods=2).mean().idxmin())
    assert f.figures["lowest_epoch"] == h["epoch"].iloc[low]
    assert f.figures["last_base_loss"] > f.figures["lowest_base_loss"]
    assert any("lower learning_rate (now learning_rate=0.15" in a for a in f.advice)
    # Nothing in the report asks for a higher learning rate.
    assert not any("higher learning rate" in a for g in d for a in g.advice)


# ---------------------------------------------------------------------------------------------
# The command line: fastmf diagnose --model FILE [--plot FILE] [--ratings CSV]


def test_cli_prints_the_report_and_writes_the_plot(ratings, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    from fastmf.cli import main
    from fastmf.serialize import save

    model = fit(ratings, n_factors=16, n_epochs=12, reg=1.0)
    path, png, csv = tmp_path / "m.fastmf", tmp_path / "h.png", tmp_path / "r.csv"
    save(model, path)
    ratings.rename(columns={"user": "userId", "item": "movieId"}).to_csv(csv, index=False)
    assert main(["diagnose", "--model", str(path), "--plot", str(png), "--ratings", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(diagnose(model, ratings)))
    assert "reg_dominates" in out and "bias-only RMSE" in out
    assert f"plot written to {png}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    # Without --ratings: the same report as diagnose(model) alone.
    assert main(["diagnose", "--model", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(diagnose(model)).strip()


def test_cli_errors_name_the_file(tmp_path, capsys) -> None:
    from fastmf.cli import main

    assert main(["diagnose", "--model", str(tmp_path / "missing.fastmf")]) == 2
    assert "missing.fastmf: no such file" in capsys.readouterr().err
    bad = tmp_path / "r.csv"
    pd.DataFrame({"a": [1]}).to_csv(bad, index=False)
    from fastmf.cli.diagnose import _read_ratings

    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['user', 'item', 'rating'\]"):
        _read_ratings(str(bad))


# ---------------------------------------------------------------------------------------------
# Properties of any report


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    seed=st.integers(0, 2**31 - 1),
    with_val=st.booleans(),
    reg_scale=st.sampled_from([0.0, 1e-4, 0.05, 2.0]),
)
def test_any_history_gives_an_ordered_report_of_known_codes(
    n: int, seed: int, with_val: bool, reg_scale: float
) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    train = 0.8 + 0.4 * np.exp(-t / rng.uniform(1, 8)) + rng.normal(0, 1e-3, n)
    val = train + 0.05 + 0.02 * np.maximum(0, t - rng.integers(0, n)) / n if with_val else None
    hist = make_history(train, train**2 * reg_scale * rng.uniform(0.5, 1.5, n), val)
    diagnosis = diagnose(hist, params={"reg": 0.02, "n_factors": 8})
    codes = diagnosis.codes
    assert len(set(codes)) == len(codes)
    assert set(codes) <= set(CODES)
    assert codes == sorted(codes, key=CODES.index)
    assert ("still_improving" in codes) + ("plateau" in codes) <= 1
    assert ("reg_dominates" in codes) + ("reg_negligible" in codes) <= 1
    report = str(diagnosis)
    for finding in diagnosis:
        assert finding.message in report
        assert all(isinstance(v, float) for v in finding.figures.values())
