"""What diagnose reports: one ``Finding`` per statement, a ``Diagnosis`` holding them, and the
small formatters that put figures into their messages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Finding:
    """One statement about a training run.

    Attributes
    ----------
    code : str
        A stable identifier, one of ``CODES`` (for example ``"overfitting"``).
    severity : str
        ``"warning"`` (something to change), ``"info"`` (worth knowing) or ``"ok"`` (normal).
    message : str
        The statement in plain words, with the figures that support it.
    advice : tuple of str
        What to try, each a short imperative; empty when nothing needs to change.
    figures : dict
        The numbers behind the message (epochs, RMSEs, ratios), for programs and tests.
    """

    code: str
    severity: str
    message: str
    advice: tuple[str, ...] = ()
    figures: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        mark = {"warning": "!", "info": "-", "ok": "+"}.get(self.severity, "-")
        lines = [f"{mark} {self.code}: {self.message}"]
        if self.advice:
            lines.append("    what to try: " + "; ".join(self.advice) + ".")
        return "\n".join(lines)


@dataclass
class Diagnosis:
    """The findings of :func:`diagnose`; ``str()`` of it is the readable report.

    Attributes
    ----------
    findings : list of Finding
        In report order (problems first).
    history : DataFrame
        The history that was read, one row per epoch.
    params : dict
        The model parameters that were known (``reg``, ``n_factors``, ...).
    summary : dict
        The headline figures of the last epoch and the baselines (when data was given).
    """

    findings: list[Finding]
    history: pd.DataFrame
    params: dict[str, Any]
    summary: dict[str, float]

    @property
    def codes(self) -> list[str]:
        """The codes of the findings, in report order."""
        return [f.code for f in self.findings]

    def get(self, code: str) -> Finding | None:
        """The finding with this code, or None when the run did not show it."""
        for finding in self.findings:
            if finding.code == code:
                return finding
        return None

    def __contains__(self, code: object) -> bool:
        return any(f.code == code for f in self.findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __repr__(self) -> str:
        return f"Diagnosis(codes={self.codes!r})"

    def __str__(self) -> str:
        s, p = self.summary, self.params
        known = [f"{k}={p[k]}" for k in ("n_factors", "reg", "learning_rate") if k in p]
        head = f"fastmf diagnosis of {int(s['n_epochs'])} epoch(s)"
        lines = [head + (f" ({', '.join(known)})" if known else "")]
        last = (
            f"  last epoch {int(s['epoch'])}: base loss {s['base_loss']:.4f}, "
            f"reg loss {s['reg_loss']:.4f} ({pct(s['reg_ratio'])} of base), "
            f"train RMSE {s['train_rmse']:.4f}"
        )
        if "val_rmse" in s:
            last += (
                f", val RMSE {s['val_rmse']:.4f} "
                f"(best {s['best_val_rmse']:.4f} at epoch {int(s['best_epoch'])})"
            )
        lines.append(last)
        if "bias_rmse" in s:
            lines.append(
                f"  baselines on the training data: rating std {s['rating_std']:.4f}, "
                f"bias-only RMSE {s['bias_rmse']:.4f}"
            )
        if "restored_epoch" in s:
            lines.append(f"  early stopping restored the model of epoch {int(s['restored_epoch'])}")
        if s.get("too_few_epochs"):
            lines.append("  (fewer than 3 epochs: too few to judge a trend)")
        lines.append("")
        if not self.findings:
            lines.append("  nothing to report.")
        lines.extend(str(f) for f in self.findings)
        return "\n".join(lines)


def pct(x: float) -> str:
    """A fraction as a percentage, with more digits the smaller it is."""
    if x == 0:
        return "0%"
    if abs(x) < 0.001:
        return f"{100 * x:.3f}%"
    return f"{100 * x:.1f}%" if abs(x) < 10 else f"{100 * x:.0f}%"


def fmt(x: float) -> str:
    """A loss or an RMSE as the report prints it."""
    return f"{x:.4f}"


def signed_pct(x: float) -> str:
    """A signed percentage, or "about 0%" when it rounds to zero."""
    shown = pct(abs(x))
    if shown.strip("0.%") == "":  # rounds to zero: no sign on "0.000%"
        return "about 0%"
    return ("+" if x > 0 else "−" if x < 0 else "") + shown


def param_hint(text: str, p: Mapping[str, Any], name: str, factor: str | None = None) -> str:
    """``"raise reg (now 0.02)"``, or the text alone when the parameter is unknown."""
    if name not in p or p[name] is None:
        return text
    extra = f", try {factor}" if factor else ""
    return f"{text} (now {name}={p[name]}{extra})"


def lower_lr(p: Mapping[str, Any]) -> str:
    """The advice to lower the learning rate, quoting it when known."""
    return param_hint("lower learning_rate", p, "learning_rate", factor="÷3")
