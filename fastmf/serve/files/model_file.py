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

import os
from pathlib import Path
from typing import Any

from fastmf.serve.files.atomic import write_atomically
from fastmf.serve.files.container import Archive, Malformed
from fastmf.serve.files.decode import fitted_from_manifest
from fastmf.serve.files.encode import encode, write_zip
from fastmf.serve.files.read import (
    check_marker,
    check_version,
    corrupt,
    open_regular,
    read_manifest,
)
from fastmf.serve.files.schema import MARKER_NAME, Invalid
from fastmf.serve.files.state import FittedState
from fastmf.serve.fitted import check_fitted

__all__ = ["load", "save"]


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
    check_fitted(model)
    target = Path(os.path.realpath(os.fspath(path)))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot save to {os.fspath(path)!r}: folder {str(folder)!r} does not exist"
        )
    if target.is_dir():
        raise IsADirectoryError(f"cannot save to {os.fspath(path)!r}: it is a folder")
    try:
        fitted = FittedState.from_model(model)
        fitted.check()
    except Invalid as exc:
        hint = (
            "set the parameter back to a value fit accepts"
            if exc.where == "params"
            else f"the fitted state was changed after fit: refit the model, or restore {exc.where}"
        )
        raise ValueError(f"cannot save this model: {exc.where}: {exc}; {hint}") from None
    payload = encode(fitted)
    write_atomically(target, lambda fh: write_zip(fh, payload))


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
    fh, size = open_regular(target)
    with fh:
        head = fh.read(30 + len(MARKER_NAME))
        check_marker(head, target)
        try:
            archive = Archive(fh, size)
            manifest = read_manifest(archive)
        except Malformed as exc:
            raise corrupt(target, exc) from None
        check_version(manifest, target)
        try:
            fitted = fitted_from_manifest(manifest, archive)
            fitted.check_layout()
            fitted.read_arrays(archive)
            fitted.check_values()
        except Malformed as exc:
            raise corrupt(target, exc) from None
        except Invalid as exc:
            raise corrupt(target, f"{exc.where}: {exc}") from None
    return fitted.to_model()
