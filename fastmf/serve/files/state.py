"""A fitted model's state as plain parts: what save encodes and load rebuilds a model from."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import pandas as pd

from fastmf.serve.files import checks
from fastmf.serve.files.container import Archive
from fastmf.serve.files.encode import params_of
from fastmf.serve.files.schema import (
    ARRAYS,
    ATTRIBUTES,
    DERIVED,
    FIT_PARAMS,
    HISTORY_COLUMNS,
    MAPS,
    OPTIMIZER_KEYS,
    RESOLVED,
    SCALARS,
    SEEN,
    Invalid,
)
from fastmf.serve.files.values import as_ndarray, kind_of

__all__ = ["FittedState", "build_seen"]


@dataclasses.dataclass
class FittedState:
    """A fitted model's state as plain parts: what save writes and load rebuilds.

    ``arrays`` maps a label (``user_factors_``, ``history_.epoch``, ``_state.optimizer.P_s1``,
    ...) to an ndarray, or at load to the :class:`ArraySpec` of its member until it is read;
    ``members`` maps the same labels to their zip members (at load); ``structure`` holds the
    shape parameters and optimizer the checks found (set by :meth:`check_layout`).
    """

    params: dict[str, Any]
    dropped: list[str]
    arrays: dict[str, Any]
    scalars: dict[str, Any]
    user_ids: Any  # ndarray of ints (or its spec), or ndarray of objects
    item_ids: Any
    history_columns: list[str]
    history_rows: int
    state: dict[str, Any] | None
    members: dict[str, str] = dataclasses.field(default_factory=dict)
    structure: dict[str, Any] = dataclasses.field(default_factory=dict)

    # ---------------------------------------------------------------- from a live model
    @classmethod
    def from_model(cls, model: Any) -> FittedState:
        """The parts of a live model, each checked for its kind (not yet for consistency)."""
        build_seen(model)
        d = vars(model)
        known = ATTRIBUTES + DERIVED
        extra = [n for n in d if n.endswith("_") and not n.startswith("_") and n not in known]
        if extra:
            warnings.warn(
                f"save: attributes {', '.join(extra)} are not part of a fitted MatrixFactorization "
                f"and are not saved",
                UserWarning,
                stacklevel=3,
            )
        params, dropped = params_of(model)
        arrays: dict[str, Any] = {}
        for name in (*ARRAYS, *SEEN):
            if name in d:
                arrays[name] = as_ndarray(d[name], name)
        maps = _id_arrays_of(d)
        history = d.get("history_")
        columns = _history_of(history, arrays)
        state = _train_state_of(d.get("_state"), arrays)
        return cls(
            params=params,
            dropped=dropped,
            arrays=arrays,
            scalars={name: d.get(name) for name in (*SCALARS, *RESOLVED)},
            user_ids=maps["user_map_"],
            item_ids=maps["item_map_"],
            history_columns=columns,
            history_rows=len(history),
            state=state,
        )

    def read_arrays(self, archive: Archive) -> None:
        """Read every array whose header passed :meth:`check_layout`."""
        for label, member in self.members.items():
            spec = self.arrays[label] if label in self.arrays else self._ids(label)
            arr = archive.read_array(member, spec)
            if label in self.arrays:
                self.arrays[label] = arr
            elif label == "user_map_":
                self.user_ids = arr
            else:
                self.item_ids = arr

    def _ids(self, label: str) -> Any:
        return self.user_ids if label == "user_map_" else self.item_ids

    # ---------------------------------------------------------------- checks
    def check(self) -> None:
        """Every check: the layout, then the values."""
        self.check_layout()
        self.check_values()

    def check_layout(self) -> None:
        """Kinds, dtypes and shapes, from arrays or from their headers: nothing is read."""
        checks.check_layout(self)

    def check_values(self) -> None:
        """Finite parameters, offsets monotone and in range, distinct ids (arrays are read)."""
        checks.check_values(self)

    # ---------------------------------------------------------------- to a model
    def to_model(self) -> Any:
        """A fitted MatrixFactorization holding these parts (after the checks)."""
        from fastmf.data.ids import IdMap
        from fastmf.train.defaults import resolve_learning_rate
        from fastmf.train.estimator import MatrixFactorization

        model = MatrixFactorization(**self.params)
        d = model.__dict__
        history = pd.DataFrame(
            {col: self.arrays[f"history_.{col}"] for col in self.history_columns},
            index=pd.RangeIndex(self.history_rows),
        )
        d["global_mean_"] = self.scalars["global_mean_"]
        for name in ARRAYS:
            d[name] = self.arrays[name]
        d["user_map_"], d["item_map_"] = IdMap(self.user_ids), IdMap(self.item_ids)
        d["rating_scale_"] = self.scalars["rating_scale_"]
        d["history_"] = history
        for name in SCALARS[2:]:
            d[name] = self.scalars[name]
        for name in SEEN:
            if name in self.arrays:
                d[name] = self.arrays[name]
        if self.state is not None:
            d["_state"] = self._train_state()
        d.update(self._resolved(model))
        d["optimizer_"] = self.structure["optimizer"]
        d["learning_rate_"] = resolve_learning_rate(
            model.learning_rate, self.structure["optimizer"], model.batch_size
        )
        return model

    def _resolved(self, model: Any) -> dict[str, Any]:
        """``n_factors_``, ``n_epochs_`` and ``reg_`` as saved; a file written before they were
        saved had numbers for those parameters (or the model's shape, for the factors)."""
        out = {name: self.scalars.get(name) for name in RESOLVED}
        if out["n_factors_"] is None:
            out["n_factors_"] = int(self.structure["n_factors"])
        for name in ("n_epochs", "reg", "init_std"):
            if out[f"{name}_"] is None and not isinstance(getattr(model, name), str):
                out[f"{name}_"] = getattr(model, name)
        return {name: value for name, value in out.items() if value is not None}

    def _train_state(self) -> Any:
        from fastmf.train.layout import Strata
        from fastmf.train.state import TrainState as _TrainState

        assert self.state is not None
        return _TrainState(
            rng=self.state["rng"],
            user_strata=Strata(self.arrays["_state.user_strata"]),
            item_strata=Strata(self.arrays["_state.item_strata"]),
            optimizer={k: self.arrays[f"_state.optimizer.{k}"] for k in OPTIMIZER_KEYS},
            learning_rate=self.state["learning_rate"],
            plateau_best=self.state["plateau_best"],
            optimizer_name=self.structure["optimizer"],
            fit_params={name: self.structure[name] for name in FIT_PARAMS},
        )


def _id_arrays_of(d: dict[str, Any]) -> dict[str, Any]:
    """The raw ids of the model's user and item IdMaps."""
    from fastmf.data.ids import IdMap

    maps = {}
    for name in MAPS:
        if not isinstance(d.get(name), IdMap):
            raise Invalid(name, f"is {kind_of(d.get(name))}, not an IdMap")
        maps[name] = as_ndarray(d[name].ids, name)
        if maps[name].dtype.kind not in "iuO":
            raise Invalid(name, f"holds ids of dtype {maps[name].dtype}; expected ints or objects")
    return maps


def _history_of(history: Any, arrays: dict[str, Any]) -> list[str]:
    """The history's column names; each column goes into ``arrays``."""
    if not isinstance(history, pd.DataFrame):
        raise Invalid("history_", f"is {kind_of(history)}, not a DataFrame")
    columns = [str(c) if isinstance(c, str) else c for c in history.columns]
    for col in columns:
        if col not in HISTORY_COLUMNS:
            raise Invalid("history_", f"has column {col!r}; expected columns of {HISTORY_COLUMNS}")
        arrays[f"history_.{col}"] = as_ndarray(history[col].to_numpy(), f"history_.{col}")
    return columns


def _train_state_of(st: Any, arrays: dict[str, Any]) -> dict[str, Any] | None:
    """The training state's scalars (None without one); its arrays go into ``arrays``."""
    from fastmf.train.state import TrainState as _TrainState

    if st is None:
        return None
    if type(st) is not _TrainState:
        raise Invalid("_state", f"is {kind_of(st)}, not fastmf's training state")
    state = {
        "rng": st.rng,
        "learning_rate": st.learning_rate,
        "plateau_best": st.plateau_best,
        "optimizer_name": st.optimizer_name,
        "fit_params": dict(st.fit_params),
    }
    for side in ("user_strata", "item_strata"):
        starts = getattr(getattr(st, side), "starts", None)
        arrays[f"_state.{side}"] = as_ndarray(starts, f"_state.{side}.starts")
    if not isinstance(st.optimizer, dict) or set(st.optimizer) != set(OPTIMIZER_KEYS):
        raise Invalid("_state.optimizer", f"must be a dict with keys {OPTIMIZER_KEYS}")
    for key in OPTIMIZER_KEYS:
        label = f"_state.optimizer.{key}"
        arrays[label] = as_ndarray(st.optimizer[key], label)
    return state


def build_seen(model: Any) -> None:
    """Build the model's seen items (made on first use from the training layout), which the
    file must hold, once the layout is known to fit the user id map (else the build would
    index past it)."""
    d = vars(model)
    if "seen_indptr_" in d:
        return
    blocks = getattr(d.get("_state"), "blocks", None)
    user_map = d.get("user_map_")
    if blocks is None or not hasattr(user_map, "ids"):
        return
    users = blocks.users
    n = len(user_map)
    if users.size and (int(users.min()) < 0 or int(users.max()) >= n):
        raise Invalid(
            "user_map_", f"has {n} ids but the training data has user rows up to {int(users.max())}"
        )
    getattr(model, "seen_indptr_", None)
