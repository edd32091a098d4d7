"""Encoding a fitted state as a manifest and npy arrays, and writing them as one zip."""

from __future__ import annotations

import contextlib
import json
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from fastmf._version import __version__
from fastmf.serve.files.schema import (
    ARRAYS,
    FORMAT_VERSION,
    MANIFEST,
    MARKER_CONTENT,
    MARKER_NAME,
    MODEL_CLASS,
    OPTIMIZER_KEYS,
    RESOLVED,
    SCALAR_DTYPES,
    SEEN,
    STATE_CLASS,
    STRATA_CLASS,
)

if TYPE_CHECKING:
    from fastmf.serve.files.state import FittedState

__all__ = ["encode", "params_of", "write_array", "write_zip"]


def params_of(model: Any) -> tuple[dict, list[str]]:
    """The parameters a file can hold (scalars and lists of them) and the names of the others,
    left out with a warning."""
    params, dropped = {}, []
    for name, value in model.get_params().items():
        if name == "dtype" and not isinstance(value, str):
            with contextlib.suppress(TypeError):
                value = np.dtype(value).name
        if isinstance(value, np.str_):
            value = str(value)
        plain = (str, int, float, bool, type(None))
        if (
            (isinstance(value, np.generic) and value.dtype.str in SCALAR_DTYPES)
            or isinstance(value, plain)
            or (isinstance(value, (list, tuple)) and all(isinstance(v, plain) for v in value))
        ):
            params[name] = value
        else:
            dropped.append(name)
    if dropped:
        warnings.warn(
            f"save: parameters {', '.join(dropped)} hold objects that cannot be stored without "
            f"pickle (e.g. callables); the loaded model has their default values",
            UserWarning,
            stacklevel=4,
        )
        params = {k: v for k, v in params.items() if k not in dropped}
    return params, dropped


def _plain(value: Any) -> Any:
    """A JSON scalar for a raw id or title, or raise TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    raise TypeError(
        f"cannot save {value!r} of type {type(value).__name__}: ids, titles and dictionary keys "
        f"must be strings or numbers"
    )


def _scalar_desc(value: Any) -> dict:
    """The manifest description of a number, string, bool, None or numpy scalar."""
    if isinstance(value, np.generic):
        return {"t": "np", "dtype": value.dtype.str, "v": value.item()}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    return {"t": "plain", "v": value}


def encode(f: FittedState) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest (the layout fastmf 0.1.0 wrote, plus each array's dtype and shape) and the
    arrays by member name."""
    encoder = _Encoder(f)
    attributes = encoder.attributes()
    state = None if f.state is None else encoder.train_state(f.state)
    manifest = {
        "format": MARKER_NAME,
        "format_version": FORMAT_VERSION,
        "fastmf_version": __version__,
        "class": MODEL_CLASS,
        "params": _params_desc(f.params),
        "params_dropped": f.dropped,
        "attributes": attributes,
        "train_state": state,
    }
    return manifest, encoder.arrays


class _Encoder:
    """Describes the parts of a fitted state, collecting its arrays in member order."""

    def __init__(self, f: FittedState):
        self.f = f
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, label: str, member: str, arr: np.ndarray | None = None) -> dict:
        """The description of one array, stored as member ``arrays/<member>.npy``."""
        arr = self.f.arrays[label] if arr is None else arr
        self.arrays[f"arrays/{member}.npy"] = arr
        return {"t": "array", "member": f"arrays/{member}.npy", "dtype": arr.dtype.str,
                "shape": list(arr.shape)}  # fmt: skip

    def ids(self, arr: np.ndarray, name: str) -> dict:
        """An id map: object ids inline in the manifest, integer ids as an array."""
        if arr.dtype == object:
            return {"t": "idmap", "ids": {"t": "objects", "dtype": "|O",
                                          "v": [_plain(x) for x in arr.tolist()]}}  # fmt: skip
        return {"t": "idmap", "ids": self.array(name, name, arr)}

    def attributes(self) -> dict[str, Any]:
        """The fitted attributes, in the order fastmf 0.1.0 wrote them."""
        f, s = self.f, self.f.scalars
        attributes: dict[str, Any] = {"global_mean_": _scalar_desc(s["global_mean_"])}
        for name in ARRAYS:
            attributes[name] = self.array(name, name)
        attributes["user_map_"] = self.ids(f.user_ids, "user_map_")
        attributes["item_map_"] = self.ids(f.item_ids, "item_map_")
        attributes["rating_scale_"] = {
            "t": "tuple",
            "items": [_scalar_desc(x) for x in s["rating_scale_"]],
        }
        attributes["history_"] = {
            "t": "frame",
            "columns": [
                {"name": col, "data": self.array(f"history_.{col}", f"history__col{j}")}
                for j, col in enumerate(f.history_columns)
            ],
            "n_rows": f.history_rows,
        }
        attributes["n_epochs_done_"] = _scalar_desc(s["n_epochs_done_"])
        attributes["best_epoch_"] = _scalar_desc(s["best_epoch_"])
        attributes["item_titles_"] = _titles_desc(s["item_titles_"])
        for name in SEEN:
            if name in f.arrays:
                attributes[name] = self.array(name, name)
        for name in RESOLVED:
            if s.get(name) is not None:
                attributes[name] = _scalar_desc(s[name])
        return attributes

    def train_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The training state: generator, strata, optimizer arrays and scalars."""
        bg = state["rng"].bit_generator
        fields: dict[str, Any] = {
            "rng": {"t": "generator", "bit_generator": type(bg).__name__, "state": bg.state}
        }
        for side in ("user_strata", "item_strata"):
            fields[side] = {
                "t": "dataclass",
                "class": STRATA_CLASS,
                "fields": {"starts": self.array(f"_state.{side}", f"state_{side}_starts")},
            }
        fields["optimizer"] = {
            "t": "dict",
            "keys": list(OPTIMIZER_KEYS),
            "values": [
                self.array(f"_state.optimizer.{key}", f"state_optimizer_{j}")
                for j, key in enumerate(OPTIMIZER_KEYS)
            ],
        }
        fields["learning_rate"] = _scalar_desc(state["learning_rate"])
        fields["plateau_best"] = _scalar_desc(state["plateau_best"])
        fields["optimizer_name"] = _scalar_desc(state["optimizer_name"])
        fields["fit_params"] = {
            "t": "scalars",
            "items": {k: _scalar_desc(v) for k, v in state["fit_params"].items()},
        }
        return {"class": STATE_CLASS, "fields": fields}


def _titles_desc(titles: Any) -> dict:
    if titles is None:
        return {"t": "plain", "v": None}
    return {
        "t": "dict",
        "keys": [_plain(k) for k in titles],
        "plain": [_plain(v) for v in titles.values()],
    }


def _params_desc(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            out[name] = {"t": kind, "items": [_scalar_desc(v) for v in value]}
        else:
            out[name] = _scalar_desc(value)
    return out


def write_zip(fh: Any, payload: tuple[dict, dict[str, np.ndarray]]) -> None:
    """Write the marker, the manifest and every array, stored (not compressed), to ``fh``."""
    manifest, arrays = payload
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MARKER_NAME, MARKER_CONTENT)
        zf.writestr(MANIFEST, json.dumps(manifest, allow_nan=True, indent=1).encode("utf-8"))
        for member, arr in arrays.items():
            write_array(zf, member, arr)


def write_array(zf: zipfile.ZipFile, member: str, arr: np.ndarray) -> None:
    """One npy member (zip64 when large), never pickled."""
    big = arr.nbytes > 2**31 - 2**20
    with zf.open(member, "w", force_zip64=big) as out:
        np.lib.format.write_array(out, np.ascontiguousarray(arr), allow_pickle=False)
