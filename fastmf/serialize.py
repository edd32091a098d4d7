"""Saving and loading a fitted model: one file, no pickle, decoded by an allowlist.

The code lives in :mod:`fastmf.serve.files` (see :mod:`fastmf.serve.files.model_file` for the
file layout); this module keeps the import path ``fastmf.serialize``.
"""

from __future__ import annotations

from fastmf.errors import ModelFileError
from fastmf.serve.files.model_file import load, save
from fastmf.serve.files.schema import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "ModelFileError", "load", "save"]
