"""A training call either completes or leaves the previous fitted state exactly as it was.

``fit`` replaces the fitted attributes with new objects, so its checkpoint keeps references to
the old ones. ``partial_fit`` trains the current arrays in place, so its checkpoint copies them
(factors, biases, optimizer state and the random stream). Ctrl-C keeps its documented meaning:
the model stays at the last epoch that completed in the call, and goes back to the checkpoint
when none did.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from typing import Any

import numpy as np

FITTED = (
    "global_mean_",
    "user_bias_",
    "item_bias_",
    "user_factors_",
    "item_factors_",
    "user_map_",
    "item_map_",
    "rating_scale_",
    "seen_indptr_",
    "seen_items_",
    "item_titles_",
    "history_",
    "n_epochs_done_",
    "best_epoch_",
    "optimizer_",
    "learning_rate_",
    "n_factors_",
    "n_epochs_",
    "reg_",
    "init_std_",
    "batch_history_",
    "_state",
)
"""Every attribute a fit sets; a model is fitted when it has ``user_factors_``."""

_IN_PLACE = ("user_bias_", "item_bias_", "user_factors_", "item_factors_")

# held while a model's fitted attributes are swapped, so that a reader sees old or new, not both
INSTALL_LOCK = threading.Lock()


def install(model: Any, attributes: dict[str, Any], *, clear: bool = False) -> None:
    """Set fitted attributes in one step (``clear``: drop every other fitted attribute)."""
    with INSTALL_LOCK:
        if clear:
            for name in FITTED:
                model.__dict__.pop(name, None)
        model.__dict__.update(attributes)


class Checkpoint:
    """The fitted state of a model before a training call, to put back if the call fails."""

    def __init__(self, model: Any, *, in_place: bool):
        self.refs = {name: model.__dict__[name] for name in FITTED if name in model.__dict__}
        self.copies: dict[str, np.ndarray] = {}
        if in_place:
            self.copies = {name: self.refs[name].copy() for name in _IN_PLACE if name in self.refs}
            state = self.refs.get("_state")
            if state is not None:
                self.refs["_state"] = dataclasses.replace(
                    state,
                    rng=copy.deepcopy(state.rng),
                    optimizer={k: v.copy() for k, v in state.optimizer.items()},
                )
        self.completed_epochs = 0  # epochs the call has completed and recorded
        self.in_epoch = False  # an epoch has started changing the arrays and is not recorded

    def restore(self, model: Any) -> None:
        """Put the model back as it was when the checkpoint was taken, bit for bit."""
        for name, saved in self.copies.items():
            self.refs[name][...] = saved  # the same (cache-aligned) arrays, their old values
        install(model, dict(self.refs), clear=True)

    def settle(self, model: Any, exc: BaseException) -> None:
        """After ``exc`` ended the call: keep the last completed epoch on Ctrl-C, else restore."""
        if isinstance(exc, KeyboardInterrupt) and self.completed_epochs > 0 and not self.in_epoch:
            return
        self.restore(model)
