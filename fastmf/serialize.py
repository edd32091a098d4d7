"""Saving and loading a fitted model: one file, no pickle, written atomically.

The file is a zip archive (stored, not compressed) holding

- ``fastmf-model``: the first member, a fixed marker that says what the file is,
- ``manifest.json``: the format version, the fastmf version, the parameters and a description of
  every fitted attribute (scalars inline, ids and titles as JSON lists),
- ``arrays/*.npy``: the numeric arrays (factors, biases, seen items, integer ids, history
  columns, training state), written with ``allow_pickle=False``.

Arrays keep their dtype and bits, so a loaded model predicts exactly as the saved one. The
training state (optimizer accumulators, strata, random generator) is saved too, so
``partial_fit`` continues a loaded model as it would have continued the saved one.
Saving writes a temporary file in the target's folder, flushes it to disk and renames it over
the target, so a crash mid-save leaves any previous file intact (at worst a stray
``.NAME.*.tmp`` file remains after the process was killed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FORMAT_VERSION", "ModelFileError", "load", "save"]

FORMAT_VERSION = 1
"""Version of the file layout written by :func:`save`; :func:`load` reads versions up to it."""

MARKER_NAME = "fastmf-model"
MARKER_CONTENT = b"fastmf model file\n"
_MANIFEST = "manifest.json"
_ZIP_MAGIC = b"PK\x03\x04"
_STATE = "_state"
# Fields of the training state rebuilt on demand rather than saved (the block layout of the
# training data is as large as the data itself).
_STATE_SKIP = {"blocks": None, "blocks_key": ()}


class ModelFileError(ValueError):
    """A file that :func:`load` cannot read: not a fastmf model, truncated or corrupted, or
    written by a newer fastmf."""


# --------------------------------------------------------------------------- public API


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted model to one file, atomically.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    path : str or path
        Target file (``.fastmf`` is a good suffix; none is added). Replaced if it exists; until
        the new file is complete on disk the old one stays as it was.

    Notes
    -----
    Parameters that are callables (``callbacks``, a callable ``lr_schedule``) cannot be stored
    without pickle: they are left out with a warning and the loaded model has their defaults.
    """
    from fastmf import recommend as rc

    rc._check_fitted(model)
    target = Path(os.fspath(path))
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot save to {str(target)!r}: folder {str(folder)!r} does not exist"
        )
    payload = _Encoder().model(model)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_zip(fh, payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a model written by :func:`save` (or ``model.save``).

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
        The file is not a fastmf model, is truncated or corrupted, or was written by a newer
        fastmf (its format version is above :data:`FORMAT_VERSION`).
    """
    target = Path(os.fspath(path))
    if not target.exists():
        raise FileNotFoundError(f"no model file at {str(target)!r}")
    if target.is_dir():
        raise ModelFileError(f"{str(target)!r} is a folder, not a fastmf model file")
    with open(target, "rb") as fh:
        head = fh.read(30 + len(MARKER_NAME))
    _check_marker(head, target)
    try:
        zf = zipfile.ZipFile(target, "r")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _corrupt(target, exc) from None
    with zf:
        try:
            manifest = json.loads(zf.read(_MANIFEST).decode("utf-8"))
        except KeyError:
            raise _corrupt(target, "it has no manifest.json") from None
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
            raise _corrupt(target, exc) from None
        _check_version(manifest, target)
        try:
            return _Decoder(zf, target).model(manifest)
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
            raise _corrupt(target, exc) from None


# --------------------------------------------------------------------------- checks on read


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


def _check_version(manifest: Any, target: Path) -> None:
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or manifest.get("format") != MARKER_NAME:
        raise _corrupt(target, "its manifest has no valid format version")
    if version > FORMAT_VERSION:
        from fastmf import __version__

        raise ModelFileError(
            f"{str(target)!r} was written by a newer fastmf ({manifest.get('fastmf_version')}, "
            f"model format version {version}); this fastmf {__version__} reads format versions "
            f"up to {FORMAT_VERSION}: upgrade fastmf to load it"
        )


def _corrupt(target: Path, reason: Any) -> ModelFileError:
    return ModelFileError(
        f"{str(target)!r} is a truncated or corrupted fastmf model file ({reason}); it cannot be "
        f"loaded: save the model again, or copy the file again if it was transferred"
    )


# --------------------------------------------------------------------------- writing


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


_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """A JSON scalar for a raw id or title, or raise TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _PLAIN):
        return value
    raise TypeError(
        f"cannot save {value!r} of type {type(value).__name__}: ids, titles and dictionary keys "
        f"must be strings or numbers"
    )


class _Encoder:
    """Turns the model's state into JSON descriptions plus named arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def model(self, model: Any) -> tuple[dict, dict[str, np.ndarray]]:
        from fastmf import __version__

        params, dropped = self.params(model)
        getattr(model, "seen_indptr_", None)  # built on first use: the file must hold it
        attributes = {}
        for name, value in vars(model).items():
            if name.endswith("_") and not name.startswith("_"):
                attributes[name] = self.value(value, name)
        state = None
        if _STATE in vars(model):
            state = self.state(vars(model)[_STATE])
        manifest = {
            "format": MARKER_NAME,
            "format_version": FORMAT_VERSION,
            "fastmf_version": __version__,
            "class": f"{type(model).__module__}:{type(model).__qualname__}",
            "params": params,
            "params_dropped": dropped,
            "attributes": attributes,
            "train_state": state,
        }
        return manifest, self.arrays

    def params(self, model: Any) -> tuple[dict, list[str]]:
        params, dropped = {}, []
        get = getattr(model, "get_params", None)
        for name, value in (get() if get is not None else {}).items():
            try:
                params[name] = self.value(value, f"param_{name}", arrays=False)
            except TypeError:
                dropped.append(name)
        if dropped:
            warnings.warn(
                f"save: parameters {', '.join(dropped)} hold objects that cannot be stored without "
                f"pickle (e.g. callables); the loaded model has their default values",
                UserWarning,
                stacklevel=3,
            )
        return params, dropped

    def state(self, state: Any) -> dict | None:
        """The training state (a dataclass), or None with a warning when a field is unsupported."""
        if not dataclasses.is_dataclass(state):
            return None
        fields = {}
        try:
            for f in dataclasses.fields(state):
                if f.name in _STATE_SKIP:
                    continue
                fields[f.name] = self.value(getattr(state, f.name), f"state_{f.name}")
        except TypeError as exc:
            warnings.warn(
                f"save: the training state is not saved ({exc}); the loaded model predicts the "
                f"same but partial_fit cannot continue it",
                UserWarning,
                stacklevel=3,
            )
            return None
        cls = type(state)
        return {"class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}

    def value(self, value: Any, name: str, *, arrays: bool = True) -> dict:
        """The JSON description of one value; arrays go to ``self.arrays`` under ``name``."""
        from fastmf.ratings import IdMap

        if isinstance(value, np.generic):
            if isinstance(value, (np.floating, np.integer, np.bool_)):
                return {"t": "np", "dtype": value.dtype.str, "v": value.item()}
            raise TypeError(f"unsupported numpy scalar {value!r} in {name}")
        if isinstance(value, bool):
            return {"t": "bool", "v": value}
        if isinstance(value, (int, float, str)) or value is None:
            return {"t": "plain", "v": value}
        if isinstance(value, (tuple, list)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            return {
                "t": kind,
                "items": [self.value(v, f"{name}_{j}", arrays=arrays) for j, v in enumerate(value)],
            }
        if isinstance(value, np.ndarray):
            if value.dtype == object or value.dtype.kind in "US":
                if value.ndim != 1:
                    raise TypeError(f"{name}: only 1-d arrays of ids or strings can be saved")
                return {
                    "t": "objects",
                    "dtype": value.dtype.str,
                    "v": [_plain(x) for x in value.tolist()],
                }
            if not arrays:
                raise TypeError(f"{name}: arrays are not supported here")
            return {"t": "array", "member": self.add_array(name, value)}
        if isinstance(value, IdMap):
            return {"t": "idmap", "ids": self.value(value.ids, name, arrays=arrays)}
        if isinstance(value, dict):
            keys = [_plain(k) for k in value]
            vals = list(value.values())
            if all(isinstance(v, (*_PLAIN, np.generic)) for v in vals):
                return {"t": "dict", "keys": keys, "plain": [_plain(v) for v in vals]}
            return {
                "t": "dict",
                "keys": keys,
                "values": [self.value(v, f"{name}_{j}", arrays=arrays) for j, v in enumerate(vals)],
            }
        if isinstance(value, pd.DataFrame):
            if not arrays:
                raise TypeError(f"{name}: tables are not supported here")
            columns = []
            for j, col in enumerate(value.columns):
                series = value[col]
                if isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf":
                    data = self.value(series.to_numpy(), f"{name}_col{j}")
                else:
                    data = {
                        "t": "objects",
                        "dtype": "|O",
                        "v": [_plain(x) for x in series.astype(object).tolist()],
                    }
                columns.append({"name": _plain(col), "data": data})
            return {"t": "frame", "columns": columns, "n_rows": len(value)}
        if isinstance(value, np.random.Generator):
            bg = value.bit_generator
            return {"t": "generator", "bit_generator": type(bg).__name__, "state": bg.state}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            cls = type(value)
            if not cls.__module__.startswith("fastmf."):
                raise TypeError(f"{name}: objects of {cls.__module__}.{cls.__qualname__}")
            return {
                "t": "dataclass",
                "class": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {
                    f.name: self.value(getattr(value, f.name), f"{name}_{f.name}", arrays=arrays)
                    for f in dataclasses.fields(value)
                },
            }
        raise TypeError(f"{name}: objects of type {type(value).__name__} cannot be saved")

    def add_array(self, name: str, arr: np.ndarray) -> str:
        member = f"arrays/{name}.npy"
        j = 1
        while member in self.arrays:
            member = f"arrays/{name}.{j}.npy"
            j += 1
        self.arrays[member] = arr
        return member


# --------------------------------------------------------------------------- reading


class _Decoder:
    """Rebuilds values from their JSON descriptions and the archive's arrays."""

    def __init__(self, zf: zipfile.ZipFile, target: Path) -> None:
        self.zf = zf
        self.target = target

    def model(self, manifest: dict) -> Any:
        from fastmf.model import MatrixFactorization

        params = {name: self.value(d) for name, d in manifest.get("params", {}).items()}
        known = set(MatrixFactorization._param_names())
        model = MatrixFactorization(**{k: v for k, v in params.items() if k in known})
        for name, desc in manifest.get("attributes", {}).items():
            model.__dict__[name] = self.value(desc)
        state = manifest.get("train_state")
        if state is not None:
            model.__dict__[_STATE] = self.state(state)
        if "user_factors_" not in model.__dict__:
            raise _corrupt(self.target, "it holds no fitted factors")
        return model

    def state(self, desc: dict) -> Any:
        cls = _fastmf_class(desc["class"], self.target)
        fields = {name: self.value(d) for name, d in desc["fields"].items()}
        fields.update({k: v for k, v in _STATE_SKIP.items() if k not in fields})
        return cls(**fields)

    def value(self, d: dict) -> Any:
        t = d["t"]
        if t in ("plain", "bool"):
            return d["v"]
        if t == "np":
            return np.dtype(d["dtype"]).type(d["v"])
        if t == "tuple":
            return tuple(self.value(x) for x in d["items"])
        if t == "list":
            return [self.value(x) for x in d["items"]]
        if t == "objects":
            dtype = np.dtype(d["dtype"])
            if dtype == object:
                arr = np.empty(len(d["v"]), dtype=object)
                arr[:] = d["v"]
                return arr
            return np.array(d["v"], dtype=dtype)
        if t == "array":
            return self.array(d["member"])
        if t == "idmap":
            from fastmf.ratings import IdMap

            return IdMap(self.value(d["ids"]))
        if t == "dict":
            if "plain" in d:
                return dict(zip(_keys(d["keys"]), d["plain"], strict=True))
            return dict(zip(_keys(d["keys"]), [self.value(x) for x in d["values"]], strict=True))
        if t == "frame":
            data = {}
            for col in d["columns"]:
                data[col["name"]] = self.value(col["data"])
            frame = pd.DataFrame(data, index=pd.RangeIndex(d["n_rows"]))
            return frame
        if t == "generator":
            bit_generator = getattr(np.random, d["bit_generator"])()
            bit_generator.state = d["state"]
            return np.random.Generator(bit_generator)
        if t == "dataclass":
            cls = _fastmf_class(d["class"], self.target)
            return cls(**{name: self.value(x) for name, x in d["fields"].items()})
        raise _corrupt(self.target, f"unknown value kind {t!r} in the manifest")

    def array(self, member: str) -> np.ndarray:
        data = self.zf.read(member)  # checks the CRC of the member
        try:
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise _corrupt(self.target, f"{member}: {exc}") from None


def _keys(keys: list) -> list:
    """JSON keys back as hashable values (lists never appear: keys are scalars)."""
    return [tuple(k) if isinstance(k, list) else k for k in keys]


def _fastmf_class(path: str, target: Path) -> Any:
    module, _, qualname = path.partition(":")
    if not (module == "fastmf" or module.startswith("fastmf.")):
        raise _corrupt(target, f"it names a class outside fastmf ({path})")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ModelFileError(
            f"{str(target)!r} needs {path}, which this fastmf does not have; load it with the "
            f"fastmf version that wrote it"
        ) from None
    return obj
