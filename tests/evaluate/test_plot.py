"""Tests of fastmf.plot.plot_history on the Agg backend."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from fastmf.plot import plot_history

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib (fastmf[plot]) not installed")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

EPOCHS = np.arange(1, 21)
TRAIN = 0.6 + 0.5 * np.exp(-EPOCHS / 4)
REG = 0.04 * (1 - 0.8 * np.exp(-EPOCHS / 3))
VAL = np.where(EPOCHS <= 10, 0.95 - 0.01 * EPOCHS, 0.85 + 0.004 * (EPOCHS - 10))


def history(val: bool = True, lr: np.ndarray | None = None) -> pd.DataFrame:
    h = pd.DataFrame(
        {
            "epoch": EPOCHS,
            "base_loss": TRAIN**2,
            "reg_loss": REG,
            "total_loss": TRAIN**2 + REG,
            "train_rmse": TRAIN,
        }
    )
    if val:
        h["val_rmse"] = VAL
        h["val_mae"] = 0.78 * VAL
    h["learning_rate"] = 0.01 if lr is None else lr
    h["seconds"] = 0.1
    return h


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _lines(ax) -> dict[str, np.ndarray]:
    return {line.get_label(): np.asarray(line.get_ydata(), float) for line in ax.get_lines()}


def test_two_panels_with_the_history_drawn(tmp_path) -> None:
    path = tmp_path / "history.png"
    fig = plot_history(history(), path=path)
    loss_ax, rmse_ax = fig.axes[:2]
    lines = _lines(loss_ax)
    np.testing.assert_allclose(lines["total loss"], TRAIN**2 + REG)
    np.testing.assert_allclose(lines["base loss  Σ(r−r̂)²/n"], TRAIN**2)
    np.testing.assert_allclose(lines["reg loss  λΣ(‖p‖²+‖q‖²)/n"], REG)
    assert loss_ax.get_yscale() == "log"
    lines = _lines(rmse_ax)
    np.testing.assert_allclose(lines["train RMSE"], TRAIN)
    np.testing.assert_allclose(lines["validation RMSE"], VAL)
    # The best validation epoch is marked and named in the legend.
    best = [k for k in lines if k.startswith("best validation RMSE")]
    assert best == ["best validation RMSE 0.8500 (epoch 10)"]
    legend = [t.get_text() for t in rmse_ax.get_legend().get_texts()]
    assert "overfitting: validation RMSE rising" in legend
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_annotations_name_the_rising_reg_loss_as_normal() -> None:
    fig = plot_history(history())
    loss_ax = fig.axes[0]
    texts = [t.get_text() for t in loss_ax.texts]
    change = REG[-1] / REG[0]
    share = 100 * REG[-1] / TRAIN[-1] ** 2
    assert any(f"reg loss ×{change:.2g} since epoch 1" in t for t in texts)
    assert any(f"= {share:.2g}% of the base loss" in t for t in texts)
    # Validation error fell until epoch 10 and rose after: "normal" only up to there.
    assert any("rising while val RMSE fell (to epoch 10): normal" in t for t in texts)
    below = fig.get_supxlabel()
    assert "rising reg loss with falling error: normal" in below
    assert "overfitting after epoch 10" in below


def test_rising_reg_without_validation_is_read_against_the_base_loss() -> None:
    texts = [t.get_text() for t in plot_history(history(val=False)).axes[0].texts]
    assert any("rising while base loss fell: normal" in t for t in texts)


def test_without_validation_only_training_rmse() -> None:
    fig = plot_history(history(val=False), annotate=False)
    lines = _lines(fig.axes[1])
    assert list(lines) == ["train RMSE"]
    assert len(fig.axes[0].texts) == 0 and fig.get_supxlabel() == ""


def test_learning_rate_drawn_when_a_schedule_changes_it() -> None:
    lr = 0.01 * 0.5 ** (EPOCHS // 5)
    fig = plot_history(history(lr=lr))
    assert len(fig.axes) == 3  # losses, RMSE, and the RMSE panel's learning-rate twin
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_ydata(), lr)
    assert len(plot_history(history()).axes) == 2  # constant rate: no twin axis


def test_draws_into_given_axes_and_figure() -> None:
    fig, axes = plt.subplots(1, 2)
    out = plot_history(history(), ax=axes, title="mine")
    assert out is fig and fig.get_suptitle() == "mine"
    assert len(axes[0].get_lines()) == 3
    fig2 = plt.figure()
    assert plot_history(history(), fig=fig2) is fig2 and len(fig2.axes) == 2
    with pytest.raises(ValueError, match="ax must hold two Axes"):
        plot_history(history(), ax=[axes[0]])


def test_zero_reg_loss_falls_back_to_a_linear_scale() -> None:
    h = history()
    h["reg_loss"] = 0.0
    fig = plot_history(h)
    assert fig.axes[0].get_yscale() == "linear"


def test_reads_a_models_history_and_params(tmp_path) -> None:
    class Fitted:
        history_ = history()

        def get_params(self) -> dict:
            return {"n_factors": 32, "reg": 0.05, "optimizer": "sgd"}

    fig = plot_history(Fitted(), path=tmp_path / "h.svg")
    assert fig.get_suptitle() == "fastmf training history (n_factors=32, reg=0.05, optimizer=sgd)"
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")


def test_missing_matplotlib_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install fastmf\[plot\]"):
        plot_history(history())
