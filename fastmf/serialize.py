"""Saving and loading a fitted model: one file, no pickle, decoded by an allowlist.

The file is a zip archive (stored, not compressed) holding

- ``fastmf-model``: the first member, a fixed marker that says what the file is,
- ``manifest.json``: the format version, the fastmf version, the parameters and a description of
  every fitted attribute (scalars inline, ids and titles as JSON lists),
- ``arrays/*.npy``: the numeric arrays (factors, biases, seen items, integer ids, history
  columns, training state), one member per array.

Nothing in a file names Python code to run: :func:`load` knows the closed list of attributes a
fitted model has and the kind of each (an array of given dtype and shape, an id map, a number,
the training state of known fields), refuses anything else, checks every array's header against
the others before allocating it, every member's CRC-32, and the values (finite parameters,
monotone offsets, indices in range). :func:`save` runs the same checks on the model first, so a
model tampered with in memory is refused when saved rather than when loaded. See
``docs/threat-model.md``.

Arrays keep their dtype and bits, so a loaded model predicts exactly as the saved one. The
training state (optimizer accumulators, strata, random generator) is saved too, so
``partial_fit`` continues a loaded model as it would have continued the saved one.
Saving writes a locked temporary file in the target's folder, flushes it to disk and renames it
over the target, so a crash mid-save leaves any previous file intact; the next save removes
temporary files of killed saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
import os
import re
import stat
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fastmf._codec import Archive, ArraySpec, Malformed
from fastmf._guard import optimizer_shapes
from fastmf.errors import ModelFileError  # noqa: F401 - re-exported here too

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no locks, no clean-up of temp files
    fcntl = None  # type: ignore[assignment]

__all__ = ["FORMAT_VERSION", "ModelFileError", "load", "save"]

FORMAT_VERSION = 1
"""Version of the file layout written by :func:`save`; :func:`load` reads versions up to it."""

MARKER_NAME = "fastmf-model"
MARKER_CONTENT = b"fastmf model file\n"
_MANIFEST = "manifest.json"
_MANIFEST_LIMIT = 1 << 28
_MANIFEST_RATIO = 32  # JSON expands in memory: a deflated manifest may not expand more than this
_ZIP_MAGIC = b"PK\x03\x04"
_MODEL_CLASS = "fastmf.model:MatrixFactorization"
_STATE_CLASS = "fastmf.model:_TrainState"
_STRATA_CLASS = "fastmf._schedule:Strata"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_SCALAR_DTYPES = {
    np.dtype(t).str: np.dtype(t)
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64")
}  # fmt: skip
_ARRAYS = ("user_bias_", "item_bias_", "user_factors_", "item_factors_")
_MAPS = ("user_map_", "item_map_")
_SEEN = ("seen_indptr_", "seen_items_")
_SCALARS = ("global_mean_", "rating_scale_", "n_epochs_done_", "best_epoch_", "item_titles_")
_ATTRIBUTES = (*_SCALARS[:1], *_ARRAYS, *_MAPS, *_SCALARS[1:2], "history_", *_SCALARS[2:], *_SEEN)
_OPTIMIZER_KEYS = ("bu_s1", "bu_s2", "bi_s1", "bi_s2", "P_s1", "P_s2", "Q_s1", "Q_s2",
                   "u_steps", "i_steps")  # fmt: skip
_STATE_FIELDS = ("rng", "user_strata", "item_strata", "optimizer", "learning_rate", "plateau_best")
# written since 0.2: which optimizer the state belongs to, and the shape parameters at fit
_STATE_OPTIONAL = ("optimizer_name", "fit_params")
_FIT_PARAMS = ("n_factors", "dtype", "biases", "bias_damping")
_HISTORY_COLUMNS = ("epoch", "base_loss", "reg_loss", "total_loss", "train_rmse", "val_rmse",
                    "val_mae", "learning_rate", "seconds")  # fmt: skip
_STALE_AFTER = 60.0
"""Seconds after which an empty, unlocked temporary file counts as left by a killed save."""


class _Bad(ValueError):
    """An inconsistency in a fitted model's state, with the attribute (or member) it is in."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where = where


# --------------------------------------------------------------------------- public API


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted model to one file, atomically.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    path : str or path
        Target file (``.fastmf`` is a good suffix; none is added). Replaced if it exists; until
        the new file is complete on disk the old one stays as it was. A symbolic link is
        followed: its target is written and the link stays.

    Raises
    ------
    ValueError
        The model's fitted state is inconsistent (e.g. an array was replaced by one of another
        shape or dtype, or holds NaN); the message names the attribute.

    Notes
    -----
    Parameters that are callables (``callbacks``, a callable ``lr_schedule``) cannot be stored
    without pickle: they are left out with a warning and the loaded model has their defaults.
    """
    from fastmf import recommend as rc

    rc._check_fitted(model)
    target = Path(os.path.realpath(os.fspath(path)))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot save to {os.fspath(path)!r}: folder {str(folder)!r} does not exist"
        )
    if target.is_dir():
        raise IsADirectoryError(f"cannot save to {os.fspath(path)!r}: it is a folder")
    try:
        fitted = _Fitted.from_model(model)
        fitted.check()
    except _Bad as exc:
        hint = (
            "set the parameter back to a value fit accepts"
            if exc.where == "params"
            else f"the fitted state was changed after fit: refit the model, or restore {exc.where}"
        )
        raise ValueError(f"cannot save this model: {exc.where}: {exc}; {hint}") from None
    payload = _encode(fitted)
    _remove_stale_temp_files(folder, target.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # live: no other save removes it
            _write_zip(fh, payload)
            fh.flush()
            os.fsync(fh.fileno())
            os.chmod(tmp, _file_mode(target))
            os.replace(tmp, target)  # still locked: the name is gone before the lock is
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a model written by :func:`save` (or ``model.save``).

    The file is decoded by an allowlist: it can only describe the data of a fitted model, and
    nothing in it is resolved to Python code. See ``docs/threat-model.md``.

    Returns
    -------
    MatrixFactorization
        Fitted, with the saved parameters, factors, biases, id maps, seen items, titles,
        history and training state; it predicts bit for bit as the saved model did.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError (a ValueError)
        The file is not a regular file or not a fastmf model, is truncated or corrupted, holds
        what a fastmf model cannot hold, or was written by a newer fastmf (its format version is
        above :data:`FORMAT_VERSION`). The message names the member or attribute at fault.
    """
    target = Path(os.fspath(path))
    fh, size = _open_regular(target)
    with fh:
        head = fh.read(30 + len(MARKER_NAME))
        _check_marker(head, target)
        try:
            archive = Archive(fh, size)
            manifest = _read_manifest(archive)
        except Malformed as exc:
            raise _corrupt(target, exc) from None
        _check_version(manifest, target)
        try:
            fitted = _Fitted.from_manifest(manifest, archive)
            fitted.check_layout()
            fitted.read_arrays(archive)
            fitted.check_values()
        except Malformed as exc:
            raise _corrupt(target, exc) from None
        except _Bad as exc:
            raise _corrupt(target, f"{exc.where}: {exc}") from None
    return fitted.to_model()


# --------------------------------------------------------------------------- checks on read


def _open_regular(target: Path) -> tuple[Any, int]:
    """The file opened for reading, refused unless it is a regular file; never blocks."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {str(target)!r}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{str(target)!r} is a folder, not a fastmf model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(_not_regular(target, st.st_mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(target, flags | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the two looks
            raise ModelFileError(_not_regular(target, st.st_mode))
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def _not_regular(target: Path, mode: int) -> str:
    kind = (
        "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )  # fmt: skip
    return f"{str(target)!r} is {kind}, not a fastmf model file; load a file written by save"


def _check_marker(head: bytes, target: Path) -> None:
    if len(head) == 0:
        raise ModelFileError(
            f"{str(target)!r} is empty (0 bytes): not a fastmf model, or a save that never "
            f"completed; save the model again"
        )
    name = MARKER_NAME.encode("ascii")
    if head[:4] != _ZIP_MAGIC or head[30 : 30 + len(name)] != name:
        raise ModelFileError(
            f"{str(target)!r} is not a fastmf model file (it does not start with the fastmf "
            f"marker); load a file written by model.save or fastmf.save"
        )


def _read_manifest(archive: Archive) -> Any:
    if not archive.names or archive.names[0] != MARKER_NAME:
        raise Malformed(f"its first member is not {MARKER_NAME!r}")
    if archive.read(MARKER_NAME, len(MARKER_CONTENT)) != MARKER_CONTENT:
        raise Malformed(f"member {MARKER_NAME!r} does not hold the fastmf marker")
    if _MANIFEST not in archive.infos:
        raise Malformed("it has no manifest.json")
    info = archive.infos[_MANIFEST]
    if info.file_size > _MANIFEST_RATIO * info.compress_size + 1024:
        raise Malformed(
            f"manifest.json declares {info.file_size} bytes from {info.compress_size} compressed "
            f"bytes; a manifest may expand at most {_MANIFEST_RATIO} times"
        )
    data = archive.read(_MANIFEST, _MANIFEST_LIMIT)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed(f"manifest.json is not valid JSON ({type(exc).__name__}: {exc})") from None


def _check_version(manifest: Any, target: Path) -> None:
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version < 1
        or manifest.get("format") != MARKER_NAME
    ):
        raise _corrupt(target, "its manifest has no valid format version")
    if version > FORMAT_VERSION:
        from fastmf import __version__

        written_by = manifest.get("fastmf_version")
        raise ModelFileError(
            f"{str(target)!r} was written by a newer fastmf ({str(written_by)[:40]}, model format "
            f"version {version}); this fastmf {__version__} reads format versions up to "
            f"{FORMAT_VERSION}: upgrade fastmf to load it"
        )


def _corrupt(target: Path, reason: Any) -> ModelFileError:
    return ModelFileError(
        f"{str(target)!r} is a truncated or corrupted fastmf model file ({reason}); it cannot be "
        f"loaded: save the model again, or copy the file again if it was transferred"
    )


# --------------------------------------------------------------------------- the fitted state


@dataclasses.dataclass
class _Fitted:
    """A fitted model's state as plain parts: what save writes and load rebuilds.

    ``arrays`` maps a label (``user_factors_``, ``history_.epoch``, ``_state.optimizer.P_s1``,
    ...) to an ndarray, or at load to the :class:`ArraySpec` of its member until it is read;
    ``members`` maps the same labels to their zip members (at load).
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

    # ---------------------------------------------------------------- from a live model
    @classmethod
    def from_model(cls, model: Any) -> _Fitted:
        from fastmf.model import _TrainState
        from fastmf.ratings import IdMap

        _build_seen(model)
        d = vars(model)
        extra = [n for n in d if n.endswith("_") and not n.startswith("_") and n not in _ATTRIBUTES]
        if extra:
            warnings.warn(
                f"save: attributes {', '.join(extra)} are not part of a fitted MatrixFactorization "
                f"and are not saved",
                UserWarning,
                stacklevel=3,
            )
        params, dropped = _params_of(model)
        arrays: dict[str, Any] = {}
        for name in (*_ARRAYS, *_SEEN):
            if name in d:
                arrays[name] = _ndarray(d[name], name)
        maps = {}
        for name in _MAPS:
            if not isinstance(d.get(name), IdMap):
                raise _Bad(name, f"is {_kind(d.get(name))}, not an IdMap")
            maps[name] = _ndarray(d[name].ids, name)
            if maps[name].dtype.kind not in "iuO":
                raise _Bad(name, f"holds ids of dtype {maps[name].dtype}; expected ints or objects")
        history = d.get("history_")
        if not isinstance(history, pd.DataFrame):
            raise _Bad("history_", f"is {_kind(history)}, not a DataFrame")
        columns = [str(c) if isinstance(c, str) else c for c in history.columns]
        for col in columns:
            if col not in _HISTORY_COLUMNS:
                raise _Bad(
                    "history_", f"has column {col!r}; expected columns of {_HISTORY_COLUMNS}"
                )
            arrays[f"history_.{col}"] = _ndarray(history[col].to_numpy(), f"history_.{col}")
        scalars = {name: d.get(name) for name in _SCALARS}
        state = None
        st = d.get("_state")
        if st is not None:
            if type(st) is not _TrainState:
                raise _Bad("_state", f"is {_kind(st)}, not fastmf's training state")
            state = {
                "rng": st.rng,
                "learning_rate": st.learning_rate,
                "plateau_best": st.plateau_best,
                "optimizer_name": st.optimizer_name,
                "fit_params": dict(st.fit_params),
            }
            for side in ("user_strata", "item_strata"):
                starts = getattr(getattr(st, side), "starts", None)
                arrays[f"_state.{side}"] = _ndarray(starts, f"_state.{side}.starts")
            if not isinstance(st.optimizer, dict) or set(st.optimizer) != set(_OPTIMIZER_KEYS):
                raise _Bad("_state.optimizer", f"must be a dict with keys {_OPTIMIZER_KEYS}")
            for key in _OPTIMIZER_KEYS:
                label = f"_state.optimizer.{key}"
                arrays[label] = _ndarray(st.optimizer[key], label)
        return cls(
            params=params,
            dropped=dropped,
            arrays=arrays,
            scalars=scalars,
            user_ids=maps["user_map_"],
            item_ids=maps["item_map_"],
            history_columns=columns,
            history_rows=len(history),
            state=state,
        )

    # ---------------------------------------------------------------- from a file
    @classmethod
    def from_manifest(cls, manifest: dict, archive: Archive) -> _Fitted:
        """The state a manifest describes; arrays as the specs of their members (unread)."""
        from fastmf.model import MatrixFactorization

        _only_keys(manifest, "manifest", {"format", "format_version", "fastmf_version", "class",
                   "params", "params_dropped", "attributes", "train_state"})  # fmt: skip
        if manifest.get("class", _MODEL_CLASS) != _MODEL_CLASS:
            raise _Bad("manifest class", f"{_short(manifest.get('class'))} is outside fastmf's "
                       f"known types; only {_MODEL_CLASS} models can be loaded")  # fmt: skip
        known = MatrixFactorization._param_names()
        raw_params = _field(manifest, "params", dict, "manifest")
        params = {}
        for name, desc in raw_params.items():
            if name not in known:
                raise _Bad(f"params.{_short(name)}", "is not a parameter of MatrixFactorization")
            params[name] = _param_value(desc, f"params.{name}")
        dropped = manifest.get("params_dropped", [])
        if not isinstance(dropped, list) or any(n not in known for n in dropped):
            raise _Bad("params_dropped", "must list parameter names of MatrixFactorization")
        fitted = cls(
            params=params, dropped=list(dropped), arrays={}, scalars={}, user_ids=None,
            item_ids=None, history_columns=[], history_rows=0, state=None,
        )  # fmt: skip
        attributes = _field(manifest, "attributes", dict, "manifest")
        for name in attributes:
            if name not in _ATTRIBUTES:
                raise _Bad(
                    f"attributes.{_short(name)}",
                    "is not an attribute of a fitted MatrixFactorization (the file may only "
                    "describe factors, biases, id maps, seen items, titles and history)",
                )
        for name in _ATTRIBUTES:
            if name not in attributes:
                if name in _SEEN:
                    continue
                raise _Bad(f"attributes.{name}", "is missing")
            desc = attributes[name]
            where = f"attributes.{name}"
            if name in _ARRAYS or name in _SEEN:
                fitted.arrays[name] = fitted._spec(desc, name, archive, where)
            elif name in _MAPS:
                _kind_is(desc, "idmap", where)
                _only_keys(desc, where, {"t", "ids"})
                ids_desc = _field(desc, "ids", dict, where)
                if ids_desc.get("t") == "objects":
                    ids = _objects(ids_desc, f"{where}.ids")
                else:
                    ids = fitted._spec(ids_desc, name, archive, f"{where}.ids")
                setattr(fitted, "user_ids" if name == "user_map_" else "item_ids", ids)
            elif name == "history_":
                fitted._history(desc, archive, where)
            elif name == "item_titles_":
                fitted.scalars[name] = _titles(desc, where)
            elif name == "rating_scale_":
                _kind_is(desc, "tuple", where)
                _only_keys(desc, where, {"t", "items"})
                items = _field(desc, "items", list, where)
                fitted.scalars[name] = tuple(_scalar(x, f"{where}.items") for x in items)
            else:
                fitted.scalars[name] = _scalar(desc, where)
        if (_SEEN[0] in fitted.arrays) != (_SEEN[1] in fitted.arrays):
            raise _Bad("attributes", "holds one of seen_indptr_ and seen_items_ without the other")
        state = manifest.get("train_state")
        if state is not None:
            fitted._state(state, archive)
        referenced = {MARKER_NAME, _MANIFEST, *fitted.members.values()}
        for member in archive.names:
            if member not in referenced:
                raise _Bad(f"member {_short(member)}", "is not described by the manifest")
        return fitted

    def _spec(self, desc: Any, label: str, archive: Archive, where: str) -> ArraySpec:
        _kind_is(desc, "array", where)
        _only_keys(desc, where, {"t", "member", "dtype", "shape"})
        member = _field(desc, "member", str, where)
        if member in self.members.values():
            raise _Bad(where, f"names member {_short(member)} that another value also names")
        if member in (MARKER_NAME, _MANIFEST) or not member.endswith(".npy"):
            raise _Bad(where, f"names member {_short(member)}, which is not an array")
        if member not in archive.infos:
            raise _Bad(where, f"names member {_short(member)}, which the file does not hold")
        spec = archive.array_spec(member)
        if "dtype" in desc and desc["dtype"] != spec.dtype.str:
            raise _Bad(where, f"declares dtype {_short(desc['dtype'])} but {member} holds "
                       f"{spec.dtype.str}")  # fmt: skip
        if "shape" in desc and desc["shape"] != list(spec.shape):
            raise _Bad(where, f"declares shape {_short(desc['shape'])} but {member} holds "
                       f"{spec.shape}")  # fmt: skip
        self.members[label] = member
        return spec

    def _history(self, desc: Any, archive: Archive, where: str) -> None:
        _kind_is(desc, "frame", where)
        _only_keys(desc, where, {"t", "columns", "n_rows"})
        n_rows = _field(desc, "n_rows", int, where)
        if isinstance(n_rows, bool) or n_rows < 0:
            raise _Bad(f"{where}.n_rows", f"must be a count, got {_short(n_rows)}")
        self.history_rows = n_rows
        for j, col in enumerate(_field(desc, "columns", list, where)):
            cw = f"{where}.columns[{j}]"
            if not isinstance(col, dict):
                raise _Bad(cw, "must be an object with a name and data")
            _only_keys(col, cw, {"name", "data"})
            name = col.get("name")
            if name not in _HISTORY_COLUMNS or name in self.history_columns:
                raise _Bad(cw, f"names column {_short(name)}; expected distinct columns of "
                           f"{_HISTORY_COLUMNS}")  # fmt: skip
            self.history_columns.append(name)
            label = f"history_.{name}"
            self.arrays[label] = self._spec(col.get("data"), label, archive, f"{cw}.data")

    def _state(self, desc: Any, archive: Archive) -> None:
        where = "train_state"
        if not isinstance(desc, dict):
            raise _Bad(where, "must be an object or null")
        _only_keys(desc, where, {"class", "fields"})
        if desc.get("class") != _STATE_CLASS:
            raise _Bad(f"{where}.class", f"{_short(desc.get('class'))} is outside fastmf's known "
                       f"types; the training state must be {_STATE_CLASS}")  # fmt: skip
        fields = _field(desc, "fields", dict, where)
        if not set(_STATE_FIELDS) <= set(fields) <= set(_STATE_FIELDS + _STATE_OPTIONAL):
            raise _Bad(f"{where}.fields", f"must be exactly {_STATE_FIELDS} (and, since 0.2, "
                       f"{_STATE_OPTIONAL}), got {_short(sorted(map(str, fields)))}")  # fmt: skip
        state: dict[str, Any] = {"rng": _generator(fields["rng"], f"{where}.rng")}
        for side in ("user_strata", "item_strata"):
            fw = f"{where}.{side}"
            d = fields[side]
            _kind_is(d, "dataclass", fw)
            _only_keys(d, fw, {"t", "class", "fields"})
            if d.get("class") != _STRATA_CLASS:
                raise _Bad(f"{fw}.class", f"{_short(d.get('class'))} is outside fastmf's known "
                           f"types; strata must be {_STRATA_CLASS}")  # fmt: skip
            sf = _field(d, "fields", dict, fw)
            if set(sf) != {"starts"}:
                raise _Bad(f"{fw}.fields", "must hold exactly 'starts'")
            label = f"_state.{side}"
            self.arrays[label] = self._spec(sf["starts"], label, archive, f"{fw}.starts")
        ow = f"{where}.optimizer"
        d = fields["optimizer"]
        _kind_is(d, "dict", ow)
        _only_keys(d, ow, {"t", "keys", "values"})
        keys = _field(d, "keys", list, ow)
        values = _field(d, "values", list, ow)
        if sorted(map(str, keys)) != sorted(_OPTIMIZER_KEYS) or len(keys) != len(values):
            raise _Bad(f"{ow}.keys", f"must be exactly {_OPTIMIZER_KEYS}")
        for key, value in zip(keys, values, strict=True):
            label = f"_state.optimizer.{key}"
            self.arrays[label] = self._spec(value, label, archive, f"{ow}.{key}")
        state["learning_rate"] = _scalar(fields["learning_rate"], f"{where}.learning_rate")
        state["plateau_best"] = _scalar(fields["plateau_best"], f"{where}.plateau_best")
        state["optimizer_name"] = None
        state["fit_params"] = {}
        if "optimizer_name" in fields:
            state["optimizer_name"] = _scalar(fields["optimizer_name"], f"{where}.optimizer_name")
        if "fit_params" in fields:
            fw = f"{where}.fit_params"
            d = fields["fit_params"]
            _kind_is(d, "scalars", fw)
            _only_keys(d, fw, {"t", "items"})
            items = _field(d, "items", dict, fw)
            if not set(items) <= set(_FIT_PARAMS):
                raise _Bad(fw, f"may hold only {_FIT_PARAMS}, got {_short(sorted(items))}")
            state["fit_params"] = {k: _scalar(v, f"{fw}.{k}") for k, v in items.items()}
        self.state = state

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
        self.check_layout()
        self.check_values()

    def check_layout(self) -> None:
        """Kinds, dtypes and shapes, from arrays or from their headers: nothing is read."""
        from fastmf.model import MatrixFactorization

        dtype_param = self.params.get("dtype", "float32")
        if "dtype" in self.dropped and "user_factors_" in self.arrays:
            dtype_param = self.arrays["user_factors_"].dtype.name  # 0.1.0 dropped a dtype type
            self.params["dtype"] = dtype_param
        if dtype_param not in ("float32", "float64"):
            raise _Bad("params", f"dtype must be 'float32' or 'float64', got {_short(dtype_param)}")
        dtype = np.dtype(dtype_param)
        huge = [n for n, v in self.params.items() if _integer(v) and abs(v) >= 2**63]
        if huge:
            raise _Bad("params", f"{', '.join(huge)} beyond the range of a 64-bit integer")
        try:
            p = MatrixFactorization(**self.params)._check_params()
        except (TypeError, ValueError) as exc:
            raise _Bad("params", str(exc)) from None
        except OverflowError:
            huge = [n for n, v in self.params.items() if _integer(v) and not _real(v)]
            raise _Bad("params", f"{', '.join(huge)} beyond the range of a float") from None
        self._check_scalars()
        n_u = self._check_ids(self.user_ids, "user_map_")
        n_i = self._check_ids(self.item_ids, "item_map_")
        self.structure = self._structure(p)
        k = self.structure["n_factors"]
        dtype = np.dtype(self.structure["dtype"])
        why = f"(dtype={dtype.name}, n_factors={k}, {n_u} user ids, {n_i} item ids)"
        for label, shape in (
            ("user_factors_", (n_u, k)),
            ("item_factors_", (n_i, k)),
            ("user_bias_", (n_u,)),
            ("item_bias_", (n_i,)),
        ):
            self._expect(label, (dtype,), shape, why)
        if "seen_indptr_" in self.arrays:
            self._expect("seen_indptr_", (np.dtype(np.int64),), (n_u + 1,), f"({n_u} user ids)")
            items = self.arrays["seen_items_"]
            self._expect("seen_items_", (np.dtype(np.int32),), (_len(items),), "(1-d)")
        for col in self.history_columns:
            label = f"history_.{col}"
            arr = self.arrays[label]
            if arr.dtype.kind not in "iuf" or arr.dtype.itemsize > 8 or arr.ndim != 1:
                raise _Bad(label, f"has dtype {arr.dtype} and shape {arr.shape}; expected a "
                           f"1-d numeric column")  # fmt: skip
            if arr.shape[0] != self.history_rows:
                raise _Bad(label, f"has {arr.shape[0]} rows; the history has {self.history_rows}")
        if self.state is not None:
            for side, n in (("user_strata", n_u), ("item_strata", n_i)):
                starts = self.arrays[f"_state.{side}"]
                if (starts.dtype != np.int64 or starts.ndim != 1
                        or not 2 <= starts.shape[0] <= n + 1):  # fmt: skip
                    raise _Bad(
                        f"_state.{side}",
                        f"has dtype {starts.dtype} and shape "
                        f"{starts.shape}; expected int64 of 2 to {n + 1} stratum starts",
                    )
            optimizer = self.structure["optimizer"]
            shapes = optimizer_shapes(optimizer, n_u, n_i, k)
            for key, shape in shapes.items():
                kind = (np.dtype(np.int64),) if key.endswith("steps") else (dtype,)
                self._expect(f"_state.optimizer.{key}", kind, shape,
                             f"(optimizer={optimizer!r}, {why[1:]}")  # fmt: skip

    def _structure(self, p: dict[str, Any]) -> dict[str, Any]:
        """The shape of the fitted model: the shape parameters it was fitted with (0.1.0 files:
        the saved parameters) and the optimizer its state belongs to."""
        from fastmf.model import BIASES, DTYPES, OPTIMIZERS

        fit = dict(self.state["fit_params"]) if self.state else {}
        structure = {name: fit.get(name, p[name]) for name in _FIT_PARAMS}
        named = self.state.get("optimizer_name") if self.state else None
        structure["optimizer"] = named or p["optimizer"]
        where = "_state.fit_params"
        if not _integer(structure["n_factors"]) or not 1 <= structure["n_factors"] <= 2**31:
            raise _Bad(where, f"n_factors is {_short(structure['n_factors'])}")
        for name, allowed in (("dtype", DTYPES), ("biases", BIASES)):
            if structure[name] not in allowed:
                raise _Bad(where, f"{name} is {_short(structure[name])}; expected one of {allowed}")
        if not _finite(structure["bias_damping"]) or structure["bias_damping"] < 0:
            raise _Bad(where, f"bias_damping is {_short(structure['bias_damping'])}")
        if structure["optimizer"] not in OPTIMIZERS:
            raise _Bad("_state.optimizer_name", f"is {_short(structure['optimizer'])}; expected "
                       f"one of {OPTIMIZERS}")  # fmt: skip
        return structure

    def _expect(self, label: str, dtypes: tuple, shape: tuple, why: str) -> None:
        arr = self.arrays.get(label)
        if arr is None:
            raise _Bad(label, "is missing")
        if arr.dtype not in dtypes or tuple(arr.shape) != shape:
            wanted = " or ".join(d.name for d in dtypes)
            raise _Bad(label, f"has dtype {arr.dtype} and shape {tuple(arr.shape)}; expected "
                       f"dtype {wanted} and shape {shape} {why}")  # fmt: skip

    def _check_ids(self, ids: Any, label: str) -> int:
        if ids is None:
            raise _Bad(label, "is missing")
        if ids.ndim != 1 or ids.dtype.kind not in "iuO" or ids.shape[0] == 0:
            raise _Bad(label, f"holds ids of dtype {ids.dtype} and shape {ids.shape}; expected a "
                       f"non-empty 1-d array of integers or strings")  # fmt: skip
        return int(ids.shape[0])

    def _check_scalars(self) -> None:
        s = self.scalars
        mu = s.get("global_mean_")
        if not _finite(mu):
            raise _Bad("global_mean_", f"is {_short(mu)}; expected a finite number")
        scale = s.get("rating_scale_")
        if (not isinstance(scale, tuple) or len(scale) != 2 or not all(map(_finite, scale))
                or scale[0] > scale[1]):  # fmt: skip
            raise _Bad("rating_scale_", f"is {_short(scale)}; expected (low, high), finite")
        done = s.get("n_epochs_done_")
        if not _integer(done) or done < 0:
            raise _Bad("n_epochs_done_", f"is {_short(done)}; expected a count of epochs")
        best = s.get("best_epoch_")
        if best is not None and (not _integer(best) or not 0 <= best <= done):
            raise _Bad("best_epoch_", f"is {_short(best)}; expected None or an epoch up to {done}")
        titles = s.get("item_titles_")
        if titles is not None and not isinstance(titles, dict):
            raise _Bad("item_titles_", f"is {_kind(titles)}; expected a dict or None")
        if self.state is not None:
            rng = self.state["rng"]
            if (not isinstance(rng, np.random.Generator)
                    or type(rng.bit_generator).__name__ not in _BIT_GENERATORS):  # fmt: skip
                raise _Bad("_state.rng", f"is {_kind(rng)}; expected a Generator of "
                           f"{', '.join(_BIT_GENERATORS)}")  # fmt: skip
            lr = self.state["learning_rate"]
            if not _finite(lr) or lr <= 0:
                raise _Bad("_state.learning_rate", f"is {_short(lr)}; expected a finite rate > 0")
            best_loss = self.state["plateau_best"]
            if not _real(best_loss) or math.isnan(float(best_loss)):
                raise _Bad("_state.plateau_best", f"is {_short(best_loss)}; expected a number")

    def check_values(self) -> None:
        """Finite parameters, offsets monotone and in range, distinct ids (arrays are read)."""
        for label, arr in self.arrays.items():
            parameter = label in _ARRAYS or label.startswith("_state.optimizer.")
            if parameter and arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise _Bad(label, "holds NaN or infinite values; a model file holds finite "
                               "parameters only")  # fmt: skip
        if self.state is not None:
            for key in ("u_steps", "i_steps"):
                steps = self.arrays[f"_state.optimizer.{key}"]
                if steps.size and steps.min() < 0:
                    raise _Bad(f"_state.optimizer.{key}", "holds negative step counts")
        n_u, n_i = len(self.user_ids), len(self.item_ids)
        if "seen_indptr_" in self.arrays:
            indptr, items = self.arrays["seen_indptr_"], self.arrays["seen_items_"]
            if indptr[0] != 0 or indptr[-1] != len(items) or (np.diff(indptr) < 0).any():
                raise _Bad("seen_indptr_", f"must rise from 0 to {len(items)} (the length of "
                           f"seen_items_) without decreasing")  # fmt: skip
            if items.size and (items.min() < 0 or items.max() >= n_i):
                raise _Bad("seen_items_", f"holds item rows outside 0..{n_i - 1}")
        if self.state is not None:
            for side, n in (("user_strata", n_u), ("item_strata", n_i)):
                starts = self.arrays[f"_state.{side}"]
                if starts[0] != 0 or starts[-1] != n or (np.diff(starts) < 0).any():
                    raise _Bad(f"_state.{side}", f"stratum starts must rise from 0 to {n}")
        for label, ids in (("user_map_", self.user_ids), ("item_map_", self.item_ids)):
            if ids.dtype == object:
                bad = [x for x in ids[:] if not isinstance(x, (str, int, float))]
                if bad:
                    raise _Bad(label, f"holds id {_short(bad[0])}; ids are strings or numbers")
            try:
                unique = pd.Index(ids).is_unique
            except TypeError:
                unique = False
            if not unique:
                raise _Bad(label, "holds repeated ids; every row has its own id")

    # ---------------------------------------------------------------- to a model
    def to_model(self) -> Any:
        from fastmf._schedule import Strata
        from fastmf.model import MatrixFactorization, _TrainState
        from fastmf.ratings import IdMap

        model = MatrixFactorization(**self.params)
        d = model.__dict__
        history = pd.DataFrame(
            {col: self.arrays[f"history_.{col}"] for col in self.history_columns},
            index=pd.RangeIndex(self.history_rows),
        )
        d["global_mean_"] = self.scalars["global_mean_"]
        for name in _ARRAYS:
            d[name] = self.arrays[name]
        d["user_map_"], d["item_map_"] = IdMap(self.user_ids), IdMap(self.item_ids)
        d["rating_scale_"] = self.scalars["rating_scale_"]
        d["history_"] = history
        for name in _SCALARS[2:]:
            d[name] = self.scalars[name]
        for name in _SEEN:
            if name in self.arrays:
                d[name] = self.arrays[name]
        if self.state is not None:
            d["_state"] = _TrainState(
                rng=self.state["rng"],
                user_strata=Strata(self.arrays["_state.user_strata"]),
                item_strata=Strata(self.arrays["_state.item_strata"]),
                optimizer={k: self.arrays[f"_state.optimizer.{k}"] for k in _OPTIMIZER_KEYS},
                learning_rate=self.state["learning_rate"],
                plateau_best=self.state["plateau_best"],
                optimizer_name=self.structure["optimizer"],
                fit_params={name: self.structure[name] for name in _FIT_PARAMS},
            )
        return model


def _build_seen(model: Any) -> None:
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
        raise _Bad("user_map_", f"has {n} ids but the training data has user rows up to "
                   f"{int(users.max())}")  # fmt: skip
    getattr(model, "seen_indptr_", None)


# --------------------------------------------------------------------------- decoding values


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def _real(x: Any) -> bool:
    """A real number a float can hold (not a bool)."""
    if not isinstance(x, numbers.Real) or isinstance(x, (bool, np.bool_)):
        return False
    try:
        float(x)
    except OverflowError:  # an int beyond float's range
        return False
    return True


def _finite(x: Any) -> bool:
    return _real(x) and math.isfinite(float(x))


def _integer(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _len(arr: Any) -> int:
    return int(arr.shape[0]) if arr.ndim == 1 else -1


def _ndarray(value: Any, label: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise _Bad(label, f"is {_kind(value)}, not an ndarray")
    return value


def _only_keys(d: Any, where: str, allowed: set) -> None:
    if not isinstance(d, dict):
        raise _Bad(where, f"must be a JSON object, got {_kind(d)}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise _Bad(where, f"has unknown field {_short(unknown[0])}")


def _field(d: dict, key: str, kind: type, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _Bad(where, f"has no field {key!r}")
    value = d[key]
    if not isinstance(value, kind):
        raise _Bad(f"{where}.{key}", f"must be a {kind.__name__}, got {_kind(value)}")
    return value


def _kind_is(desc: Any, t: str, where: str) -> None:
    if not isinstance(desc, dict):
        raise _Bad(where, f"must be a JSON object, got {_kind(desc)}")
    if desc.get("t") != t:
        raise _Bad(where, f"has kind {_short(desc.get('t'))}; expected {t!r}")


def _scalar(desc: Any, where: str) -> Any:
    """A number, string, bool or None: kinds ``plain``, ``bool`` and ``np`` only."""
    if not isinstance(desc, dict):
        raise _Bad(where, f"must be a JSON object, got {_kind(desc)}")
    t = desc.get("t")
    if t in ("plain", "bool"):
        _only_keys(desc, where, {"t", "v"})
        v = desc.get("v")
        if t == "bool" and not isinstance(v, bool):
            raise _Bad(where, f"must hold true or false, got {_short(v)}")
        if not isinstance(v, (str, int, float, type(None))):
            raise _Bad(where, f"must hold a number, string or null, got {_kind(v)}")
        return v
    if t == "np":
        _only_keys(desc, where, {"t", "dtype", "v"})
        dtype = _SCALAR_DTYPES.get(desc.get("dtype"))
        v = desc.get("v")
        if dtype is None or not isinstance(v, (int, float, bool)):
            raise _Bad(where, f"is a numpy scalar of dtype {_short(desc.get('dtype'))} holding "
                       f"{_short(v)}; expected a numeric dtype and a number")  # fmt: skip
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return dtype.type(v)
        except (OverflowError, ValueError, TypeError, RuntimeWarning) as exc:
            raise _Bad(where, f"holds {_short(v)}, which is not a {dtype.name} ({exc})") from None
    raise _Bad(where, f"has kind {_short(t)}; expected a number, string, bool or null")


def _param_value(desc: Any, where: str) -> Any:
    if isinstance(desc, dict) and desc.get("t") in ("list", "tuple"):
        _only_keys(desc, where, {"t", "items"})
        items = [_scalar(x, f"{where}[]") for x in _field(desc, "items", list, where)]
        return tuple(items) if desc["t"] == "tuple" else items
    return _scalar(desc, where)


def _objects(desc: dict, where: str) -> np.ndarray:
    """Ids given inline in the manifest: a list of strings or numbers, as an object array."""
    _only_keys(desc, where, {"t", "dtype", "v"})
    dtype = desc.get("dtype")
    if not isinstance(dtype, str) or not (dtype == "|O" or dtype[:2] in ("<U", ">U", "|U")):
        raise _Bad(where, f"has dtype {_short(dtype)}; expected object or string ids")
    values = _field(desc, "v", list, where)
    for v in values:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise _Bad(where, f"holds {_kind(v)}; ids are strings or numbers")
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _titles(desc: Any, where: str) -> dict | None:
    if isinstance(desc, dict) and desc.get("t") == "plain" and desc.get("v") is None:
        return None
    _kind_is(desc, "dict", where)
    _only_keys(desc, where, {"t", "keys", "plain", "values"})
    keys = _field(desc, "keys", list, where)
    if "plain" in desc:
        values = _field(desc, "plain", list, where)
    else:
        values = [_scalar(v, f"{where}.values") for v in _field(desc, "values", list, where)]
    if len(keys) != len(values):
        raise _Bad(where, f"has {len(keys)} keys and {len(values)} values")
    for x in (*keys, *values):
        if not isinstance(x, (str, int, float, bool, type(None), np.generic)):
            raise _Bad(where, f"holds {_kind(x)}; titles and their keys are strings or numbers")
    return dict(zip(keys, values, strict=True))


def _generator(desc: Any, where: str) -> np.random.Generator:
    _kind_is(desc, "generator", where)
    _only_keys(desc, where, {"t", "bit_generator", "state"})
    name = desc.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise _Bad(where, f"names bit generator {_short(name)}; fastmf reads "
                   f"{', '.join(_BIT_GENERATORS)} only")  # fmt: skip
    state = _field(desc, "state", dict, where)
    if state.get("bit_generator") != name:
        raise _Bad(where, f"holds the state of {_short(state.get('bit_generator'))}, not {name}")
    bit_generator = np.random.PCG64() if name == "PCG64" else np.random.PCG64DXSM()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise _Bad(where, f"holds an invalid {name} state ({type(exc).__name__}: {exc})") from None
    return np.random.Generator(bit_generator)


# --------------------------------------------------------------------------- writing


def _params_of(model: Any) -> tuple[dict, list[str]]:
    params, dropped = {}, []
    for name, value in model.get_params().items():
        if name == "dtype" and not isinstance(value, str):
            with contextlib.suppress(TypeError):
                value = np.dtype(value).name
        if isinstance(value, np.str_):
            value = str(value)
        plain = (str, int, float, bool, type(None))
        if (
            (isinstance(value, np.generic) and value.dtype.str in _SCALAR_DTYPES)
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
    if isinstance(value, np.generic):
        return {"t": "np", "dtype": value.dtype.str, "v": value.item()}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    return {"t": "plain", "v": value}


def _encode(f: _Fitted) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest (the layout fastmf 0.1.0 wrote, plus each array's dtype and shape) and the
    arrays by member name."""
    from fastmf import __version__

    arrays: dict[str, np.ndarray] = {}

    def array(label: str, member: str, arr: np.ndarray | None = None) -> dict:
        arr = f.arrays[label] if arr is None else arr
        arrays[f"arrays/{member}.npy"] = arr
        return {"t": "array", "member": f"arrays/{member}.npy", "dtype": arr.dtype.str,
                "shape": list(arr.shape)}  # fmt: skip

    def ids(arr: np.ndarray, name: str) -> dict:
        if arr.dtype == object:
            return {"t": "idmap", "ids": {"t": "objects", "dtype": "|O",
                                          "v": [_plain(x) for x in arr.tolist()]}}  # fmt: skip
        return {"t": "idmap", "ids": array(name, name, arr)}

    s = f.scalars
    attributes: dict[str, Any] = {"global_mean_": _scalar_desc(s["global_mean_"])}
    for name in _ARRAYS:
        attributes[name] = array(name, name)
    attributes["user_map_"] = ids(f.user_ids, "user_map_")
    attributes["item_map_"] = ids(f.item_ids, "item_map_")
    attributes["rating_scale_"] = {
        "t": "tuple",
        "items": [_scalar_desc(x) for x in s["rating_scale_"]],
    }
    attributes["history_"] = {
        "t": "frame",
        "columns": [
            {"name": col, "data": array(f"history_.{col}", f"history__col{j}")}
            for j, col in enumerate(f.history_columns)
        ],
        "n_rows": f.history_rows,
    }
    attributes["n_epochs_done_"] = _scalar_desc(s["n_epochs_done_"])
    attributes["best_epoch_"] = _scalar_desc(s["best_epoch_"])
    titles = s["item_titles_"]
    attributes["item_titles_"] = (
        {"t": "plain", "v": None}
        if titles is None
        else {
            "t": "dict",
            "keys": [_plain(k) for k in titles],
            "plain": [_plain(v) for v in titles.values()],
        }
    )
    for name in _SEEN:
        if name in f.arrays:
            attributes[name] = array(name, name)
    state = None
    if f.state is not None:
        bg = f.state["rng"].bit_generator
        fields: dict[str, Any] = {
            "rng": {"t": "generator", "bit_generator": type(bg).__name__, "state": bg.state}
        }
        for side in ("user_strata", "item_strata"):
            fields[side] = {
                "t": "dataclass",
                "class": _STRATA_CLASS,
                "fields": {"starts": array(f"_state.{side}", f"state_{side}_starts")},
            }
        fields["optimizer"] = {
            "t": "dict",
            "keys": list(_OPTIMIZER_KEYS),
            "values": [
                array(f"_state.optimizer.{key}", f"state_optimizer_{j}")
                for j, key in enumerate(_OPTIMIZER_KEYS)
            ],
        }
        fields["learning_rate"] = _scalar_desc(f.state["learning_rate"])
        fields["plateau_best"] = _scalar_desc(f.state["plateau_best"])
        fields["optimizer_name"] = _scalar_desc(f.state["optimizer_name"])
        fields["fit_params"] = {
            "t": "scalars",
            "items": {k: _scalar_desc(v) for k, v in f.state["fit_params"].items()},
        }
        state = {"class": _STATE_CLASS, "fields": fields}
    params: dict[str, Any] = {}
    for name, value in f.params.items():
        if isinstance(value, (list, tuple)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            params[name] = {"t": kind, "items": [_scalar_desc(v) for v in value]}
        else:
            params[name] = _scalar_desc(value)
    manifest = {
        "format": MARKER_NAME,
        "format_version": FORMAT_VERSION,
        "fastmf_version": __version__,
        "class": _MODEL_CLASS,
        "params": params,
        "params_dropped": f.dropped,
        "attributes": attributes,
        "train_state": state,
    }
    return manifest, arrays


def _write_zip(fh: Any, payload: tuple[dict, dict[str, np.ndarray]]) -> None:
    manifest, arrays = payload
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MARKER_NAME, MARKER_CONTENT)
        zf.writestr(_MANIFEST, json.dumps(manifest, allow_nan=True, indent=1).encode("utf-8"))
        for member, arr in arrays.items():
            _write_array(zf, member, arr)


def _write_array(zf: zipfile.ZipFile, member: str, arr: np.ndarray) -> None:
    big = arr.nbytes > 2**31 - 2**20
    with zf.open(member, "w", force_zip64=big) as out:
        np.lib.format.write_array(out, np.ascontiguousarray(arr), allow_pickle=False)


def _file_mode(target: Path) -> int:
    """The mode of an existing target, else the usual mode of a new file (0o666 less umask)."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform opens folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_temp_files(folder: Path, name: str) -> list[str]:
    """Delete ``.NAME.*.tmp`` files left in ``folder`` by killed saves of ``name``.

    A save holds an exclusive ``flock`` on its temporary file from just after creating it until
    the file is renamed, so a file whose lock can be taken is not being written. A file still
    empty may belong to a save that has not locked it yet: it is removed only once older than
    a minute. Returns the names removed.
    """
    if fcntl is None:
        return []
    removed = []
    pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")  # mkstemp's names
    with contextlib.suppress(OSError):
        candidates = [e for e in os.scandir(folder) if pattern.fullmatch(e.name)]
        for entry in candidates:
            with contextlib.suppress(OSError):
                if _remove_if_stale(entry.path):
                    removed.append(entry.name)
    return removed


def _remove_if_stale(path: str) -> bool:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live save holds it
        if st.st_size == 0 and time.time() - st.st_mtime < _STALE_AFTER:
            return False
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)
