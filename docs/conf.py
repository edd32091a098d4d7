"""Sphinx configuration of fastmf's documentation: ``sphinx-build -W -b html docs docs/_build``.

Sphinx rather than MkDocs: ``autodoc`` imports the package and ``napoleon`` (both part of Sphinx)
read fastmf's numpydoc docstrings as they are, so the API reference needs no plugin beyond
Sphinx itself, builds offline, and ``-W`` turns every docstring that does not parse into a
failed build. No intersphinx: the build fetches nothing from the network.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from fastmf import __version__  # noqa: E402

project = "fastmf"
author = "the fastmf authors"
copyright = "the fastmf authors, BSD-3-Clause"  # noqa: A001
version = release = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
exclude_patterns = ["_build", "*.md", "*.png"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "alabaster"
html_static_path: list[str] = []
