"""The container of a model file; the code lives in :mod:`fastmf.serve.files.container`."""

from fastmf.serve.files.container import Archive, ArraySpec, Malformed, MemberReader

__all__ = ["Archive", "ArraySpec", "Malformed", "MemberReader"]
