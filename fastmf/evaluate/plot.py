"""Draw a training history: the parts of the loss beside training and validation RMSE.

matplotlib is an optional extra (``pip install fastmf[plot]``); it is imported only when a plot
is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fastmf.evaluate.diagnose import diagnose, history_frame

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_history"]

# Colours of the tab10 cycle, fixed so that every figure reads the same way.
_BASE, _REG, _TOTAL = "#1f77b4", "#d62728", "#2f2f2f"
_TRAIN, _VAL, _LR = "#1f77b4", "#ff7f0e", "#7f7f7f"


def _import_matplotlib() -> Any:
    try:
        import matplotlib
        import matplotlib.figure
    except ImportError as exc:
        raise ImportError(
            "plot_history needs matplotlib, an optional extra of fastmf; install it with "
            "`pip install fastmf[plot]` (or `pip install matplotlib`)"
        ) from exc
    return matplotlib


def plot_history(
    model_or_history: Any,
    *,
    ax: Sequence[Axes] | None = None,
    fig: Figure | None = None,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    annotate: bool = True,
    figsize: tuple[float, float] = (11.0, 4.2),
    dpi: int = 110,
    batch_history: Any = None,
) -> Figure:
    """Plot base, regularization and total loss per epoch, with train and validation RMSE.

    Left panel: the three parts of the objective per epoch on a log scale, so that the
    regularization loss stays visible beside the much larger base loss and the vertical distance
    between them reads as their ratio. Right panel: training RMSE and, where the history has it,
    validation RMSE, with the best validation epoch marked; the learning rate is drawn on a
    second axis when a schedule changed it. With ``annotate``, the figure names what
    :func:`fastmf.diagnose` finds: the growth of the regularization loss and its share of the
    base loss, a rising regularization loss with falling validation RMSE marked as normal, and
    the epochs past the best validation error shaded as overfitting.

    Parameters
    ----------
    model_or_history : MatrixFactorization or DataFrame
        A fitted model (its ``history_`` is drawn) or a history DataFrame.
    ax : pair of Axes, optional
        Draw the losses into ``ax[0]`` and the RMSEs into ``ax[1]``.
    fig : Figure, optional
        Draw into this figure (two new subplots). Ignored when ``ax`` is given.
    path : str or path-like, optional
        Also save the figure there; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
        Without ``ax`` or ``fig``, a figure saved to a path is made outside pyplot (no window,
        nothing left open); otherwise it is a pyplot figure, shown by ``plt.show()``.
    title : str, optional
        The figure's title; by default it names the model's ``n_factors`` and ``reg``.
    annotate : bool, default True
        Write the diagnosis's findings onto the figure.
    figsize : (float, float), default (11, 4.2)
        Size in inches of a new figure.
    dpi : int, default 110
        Resolution of a saved raster file.
    batch_history : DataFrame, optional
        Losses through each epoch (``MatrixFactorization(record_batches=True)`` records them as
        ``batch_history_``, which is used when a model is given and this is not). They are drawn
        faintly under the epoch curves, each point at its place in its epoch.

    Returns
    -------
    Figure
        The matplotlib figure.
    """
    _import_matplotlib()
    h = history_frame(model_or_history)
    figure, axes = _figure_and_axes(ax, fig, path, figsize)
    loss_ax, rmse_ax = axes
    diag = diagnose(model_or_history) if annotate else None
    if batch_history is None:
        batch_history = getattr(model_or_history, "batch_history_", None)
    _draw_losses(loss_ax, h, batch_history, diag, annotate)
    _draw_errors(rmse_ax, h, diag)
    for a in axes:
        a.xaxis.get_major_locator().set_params(integer=True)
    params = diag.params if diag is not None else _params_of(model_or_history)
    _finish(figure, model_or_history, diag, params, title, path, dpi)
    return figure


def _figure_and_axes(
    ax: Any, fig: Any, path: Any, figsize: tuple[float, float]
) -> tuple[Any, list]:
    """The figure and its two Axes (losses, RMSE): given, or made."""
    if ax is not None:
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(
                f"ax must hold two Axes (losses, RMSE), got {len(axes)}; "
                "make them with plt.subplots(1, 2)"
            )
        figure = axes[0].figure
    else:
        if fig is not None:
            figure = fig
        elif path is not None:
            from matplotlib.figure import Figure

            figure = Figure(figsize=figsize, layout="constrained")
        else:
            import matplotlib.pyplot as plt

            figure = plt.figure(figsize=figsize, layout="constrained")
        axes = list(figure.subplots(1, 2))
    return figure, axes


def _draw_losses(
    loss_ax: Any, h: pd.DataFrame, batch_history: Any, diag: Any, annotate: bool
) -> None:
    """The left panel: the three losses per epoch, the batch-resolution losses faintly below."""
    epochs = h["epoch"].to_numpy()
    base, reg, total = (h[c].to_numpy() for c in ("base_loss", "reg_loss", "total_loss"))
    # -- left: the losses (those through each epoch faintly, underneath)
    if batch_history is not None and len(batch_history):
        x = _batch_positions(batch_history)
        for col, colour in (("total_loss", _TOTAL), ("base_loss", _BASE), ("reg_loss", _REG)):
            loss_ax.plot(x, batch_history[col].to_numpy(), color=colour, lw=0.6, alpha=0.3,
                         zorder=1, label=f"_batch {col}")  # fmt: skip
    loss_ax.plot(epochs, total, color=_TOTAL, lw=2.0, label="total loss")
    loss_ax.plot(epochs, base, color=_BASE, lw=1.6, ls="--", label="base loss  Σ(r−r̂)²/n")
    loss_ax.plot(epochs, reg, color=_REG, lw=1.8, label="reg loss  λΣ(‖p‖²+‖q‖²)/n")
    if np.all(np.concatenate([base, reg, total]) > 0):
        loss_ax.set_yscale("log")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss per training rating" + (" (log scale)" if np.all(reg > 0) else ""))
    loss_ax.set_title("loss and its parts")
    loss_ax.grid(True, which="major", alpha=0.3)
    if annotate and reg[-1] > 0 and reg[0] > 0:
        change = reg[-1] / reg[0]
        share = reg[-1] / base[-1] if base[-1] > 0 else np.inf
        text = f"reg loss ×{change:.2g} since epoch {epochs[0]}\n= {_share(share)} of the base loss"
        normal = diag.get("rising_reg_normal") if diag is not None else None
        if normal is not None:
            upto = int(normal.figures["epoch"])
            when = "" if upto == epochs[-1] else f" (to epoch {upto})"
            what = "val RMSE" if "first_val_rmse" in normal.figures else "base loss"
            text += f"\nrising while {what} fell{when}: normal"
        # The text sits in the bottom-right corner and the legend in the top-right one; on the
        # log scale the limits are widened so that both corners are free of curves.
        if loss_ax.get_yscale() == "log":
            top = float(max(total.max(), base.max()))
            loss_ax.set_ylim(float(min(reg.min(), base.min())) / 8, top * 4)
        loss_ax.annotate(
            text,
            xy=(epochs[-1], reg[-1]),
            xytext=(0.97, 0.04),
            textcoords="axes fraction",
            ha="right",
            va="bottom",
            fontsize=8.5,
            color=_REG,
            arrowprops={"arrowstyle": "->", "color": _REG, "lw": 0.8, "shrinkA": 2, "shrinkB": 3},
        )
    loss_ax.legend(
        loc="upper right" if loss_ax.get_yscale() == "log" else "best",
        fontsize=8.5,
        framealpha=0.9,
    )


def _draw_errors(rmse_ax: Any, h: pd.DataFrame, diag: Any) -> None:
    """The right panel: training and validation RMSE, the best epoch, the learning rate."""
    epochs = h["epoch"].to_numpy()
    # -- right: the RMSEs
    rmse_ax.plot(epochs, h["train_rmse"], color=_TRAIN, lw=1.8, label="train RMSE")
    if "val_rmse" in h.columns:
        val = h["val_rmse"].to_numpy()
        rmse_ax.plot(epochs, val, color=_VAL, lw=2.0, label="validation RMSE")
        best = int(np.nanargmin(val))
        rmse_ax.axvline(epochs[best], color=_VAL, lw=0.9, ls=":")
        rmse_ax.plot(
            [epochs[best]],
            [val[best]],
            "o",
            color=_VAL,
            ms=6,
            label=f"best validation RMSE {val[best]:.4f} (epoch {epochs[best]})",
        )
        if diag is not None and "overfitting" in diag and best < len(epochs) - 1:
            rmse_ax.axvspan(
                epochs[best],
                epochs[-1],
                color=_VAL,
                alpha=0.1,
                lw=0,
                label="overfitting: validation RMSE rising",
            )
    rmse_ax.set_xlabel("epoch")
    rmse_ax.set_ylabel("RMSE")
    rmse_ax.set_title("training and validation error")
    rmse_ax.grid(True, alpha=0.3)
    handles, labels = rmse_ax.get_legend_handles_labels()
    if "learning_rate" in h.columns:
        lr = h["learning_rate"].to_numpy()
        if np.nanmax(lr) > np.nanmin(lr):
            lr_ax = rmse_ax.twinx()
            (line,) = lr_ax.plot(epochs, lr, color=_LR, lw=1.0, ls="-.", drawstyle="steps-post")
            lr_ax.set_ylabel("learning rate", color=_LR, fontsize=9)
            lr_ax.tick_params(axis="y", colors=_LR, labelsize=8)
            handles.append(line)
            labels.append("learning rate (right axis)")
    rmse_ax.legend(handles, labels, loc="best", fontsize=8.5, framealpha=0.9)


def _finish(
    figure: Any, model_or_history: Any, diag: Any, params: dict, title: Any, path: Any, dpi: int
) -> None:
    """The diagnosis line, the title, and the file when asked for."""
    if diag is not None and diag.findings:
        import textwrap

        line = "diagnosis: " + " · ".join(_headline(f, diag) for f in diag.findings)
        figure.supxlabel(textwrap.fill(line, 150), fontsize=9, color="#333333")
    if title is None:
        # the optimizer the fit resolved ("auto" names none)
        resolved = getattr(model_or_history, "optimizer_", None)
        params = params if resolved is None else {**params, "optimizer": resolved}
        known = [f"{k}={params[k]}" for k in ("n_factors", "reg", "optimizer") if k in params]
        title = "fastmf training history" + (f" ({', '.join(known)})" if known else "")
    if title:
        figure.suptitle(title, fontsize=11)
    if path is not None:
        figure.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight")


def _batch_positions(batch_history: Any) -> np.ndarray:
    """Where each point of a batch history sits on the epoch axis: in (epoch − 1, epoch], at the
    middle of its ratings in the epoch's order."""
    epoch = batch_history["epoch"].to_numpy()
    n = batch_history["n_ratings"].to_numpy().astype(np.float64)
    x = np.empty(len(n))
    for e in np.unique(epoch):
        mine = epoch == e
        done = np.cumsum(n[mine])
        x[mine] = e - 1 + (done - n[mine] / 2) / done[-1]
    return x


def _share(x: float) -> str:
    """A share as a percentage with two significant figures: 0.53%, 8.4%, 166%."""
    pct = 100 * x
    if not np.isfinite(pct):
        return "∞%"
    return f"{pct:.0f}%" if pct >= 100 else f"{pct:.2g}%"


def _params_of(model_or_history: Any) -> dict[str, Any]:
    if hasattr(model_or_history, "get_params") and hasattr(model_or_history, "history_"):
        return dict(model_or_history.get_params())
    return {}


def _headline(finding: Any, diag: Any) -> str:
    """A few words for each finding, for the line under the figure."""
    fig = finding.figures
    words = {
        "unstable": "unstable: lower learning_rate",
        "overfitting": f"overfitting after epoch {int(fig.get('best_epoch', 0))}: raise reg, "
        "fewer factors or stop earlier",
        "underfitting": "underfitting: more factors, lower reg, more epochs or a higher "
        "learning rate",
        "still_improving": "still improving: train longer",
        "plateau": "error has flattened",
        "reg_dominates": "reg loss dominates: lower reg",
        "reg_negligible": f"reg loss negligible ({100 * fig.get('reg_ratio', 0.0):.2g}% of base)",
        "rising_reg_normal": "rising reg loss with falling error: normal",
    }
    return words.get(finding.code, finding.code)
