"""Plots of a training history: ``fastmf.plot`` re-exports ``fastmf.evaluate.plot``."""

from fastmf.evaluate.plot import plot_history

__all__ = ["plot_history"]
