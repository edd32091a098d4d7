"""The import paths from before fastmf/data keep working: each old module re-exports the very
objects of their new home, and ``fastmf.datasets.synthetic`` stays the function."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OLD_TO_NEW = {
    "fastmf.ratings": ("fastmf.data.ids", "fastmf.data.ratings"),
    "fastmf.split": ("fastmf.data.split",),
    "fastmf.datasets": ("fastmf.data.datasets",),
    "fastmf.datasets.movielens": (
        "fastmf.data.datasets.movielens",
        "fastmf.data.datasets.releases",
        "fastmf.data.datasets._movies",
        "fastmf.data.datasets._sources",
        "fastmf.errors",
    ),
    "fastmf.datasets.synthetic": ("fastmf.data.datasets.synthetic",),
    "fastmf.datasets._parse": (
        "fastmf.data.datasets._parse",
        "fastmf.data.datasets._checks",
        "fastmf.data.datasets.releases",
    ),
    "fastmf.datasets._cache": ("fastmf.data.datasets._cache",),
    "fastmf.datasets._download": ("fastmf.data.datasets._download", "fastmf.errors"),
    "fastmf.datasets._zip": ("fastmf.data.datasets._zip",),
}


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_every_old_name_is_the_object_of_its_new_home(old):
    module = importlib.import_module(old)
    homes = [importlib.import_module(name) for name in OLD_TO_NEW[old]]
    assert module.__all__, f"{old} re-exports nothing"
    for name in module.__all__:
        found = [home for home in homes if name in vars(home)]
        assert found, f"{old}.{name} has no new home among {OLD_TO_NEW[old]}"
        assert getattr(module, name) is getattr(found[0], name), f"{old}.{name} is a copy"


def test_the_public_names_of_the_old_modules_are_all_there():
    from fastmf import datasets, ratings, split

    assert set(split.__all__) >= {"kfold", "time_split", "train_test_split", "user_holdout"}
    assert set(ratings.__all__) >= {"IdMap", "Ratings", "factorize_ids", "normalize_ids"}
    assert set(datasets.__all__) == {
        "RELEASES",
        "DownloadError",
        "SyntheticTruth",
        "load_movielens",
        "load_movies",
        "synthetic",
    }


@pytest.mark.parametrize("package", ["fastmf.datasets", "fastmf.data.datasets"])
def test_synthetic_stays_the_function_after_its_module_is_imported(package):
    # a fresh interpreter: the submodule must not rebind the package's name on first import
    code = (
        f"import {package} as d, {package}.synthetic, {package}.movielens\n"
        "import fastmf.datasets._parse, fastmf.datasets._cache\n"
        "assert callable(d.synthetic) and not hasattr(d.synthetic, '__path__'), d.synthetic\n"
        "assert d.synthetic.__name__ == 'synthetic' and d.synthetic.__module__ == "
        "'fastmf.data.datasets.synthetic', d.synthetic\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
