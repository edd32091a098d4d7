"""The serving room: one fitted check, a short repr of many top-n lists, the re-exports at the
old import paths, and the room's layout rules (sizes and import directions)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import fastmf
import fastmf._codec
import fastmf.recommend
import fastmf.serialize
from fastmf.errors import NotFittedError
from fastmf.model import MatrixFactorization
from fastmf.serve import files, fold_in, recommend, results, similar
from fastmf.serve.files import container, model_file, schema
from fastmf.serve.fitted import SERVING_ATTRIBUTES, check_fitted
from tests.serve.test_recommend import hand_model, reference_scores, reference_topn, seen_of

ESTIMATOR_MESSAGE = "this MatrixFactorization is not fitted yet; call fit(ratings) before using it"
SERVE = Path(fastmf.__file__).parent / "serve"

# --------------------------------------------------------------------------- check_fitted


def test_check_fitted_passes_a_fitted_model():
    check_fitted(hand_model())


def test_check_fitted_refuses_an_unfitted_estimator_with_its_message():
    with pytest.raises(NotFittedError) as info:
        check_fitted(MatrixFactorization())
    assert str(info.value) == ESTIMATOR_MESSAGE
    with pytest.raises(NotFittedError) as estimator:
        MatrixFactorization().predict(np.array([[1, 2]]))
    assert str(estimator.value) == str(info.value)


# Removing each attribute loses one serving attribute (the id maps carry user_ids_, item_ids_).
REMOVED = ["global_mean_", "user_bias_", "item_bias_", "user_factors_", "item_factors_",
           "user_map_", "item_map_"]  # fmt: skip


@pytest.mark.parametrize("name", REMOVED)
def test_check_fitted_refuses_a_model_missing_any_serving_attribute(name):
    m = hand_model()
    delattr(m, name)
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        check_fitted(m)


def test_every_serving_attribute_is_read_by_serving():
    assert len(SERVING_ATTRIBUTES) == len(REMOVED)
    assert {"user_ids_", "item_ids_"} <= set(SERVING_ATTRIBUTES)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: recommend.recommend(m, 1),
        lambda m: recommend.recommend_many(m, [1, 2]),
        lambda m: similar.similar_items(m, 1),
        lambda m: similar.similar_users(m, 1),
        lambda m: fold_in.fold_in(m, {1: 4.0}),
    ],
)
def test_serving_an_unfitted_model_raises_the_estimators_error(call):
    with pytest.raises(NotFittedError) as info:
        call(MatrixFactorization())
    assert str(info.value) == ESTIMATOR_MESSAGE


def test_saving_an_unfitted_model_raises_the_estimators_error(tmp_path):
    with pytest.raises(NotFittedError) as info:
        model_file.save(MatrixFactorization(), tmp_path / "m.fastmf")
    assert str(info.value) == ESTIMATOR_MESSAGE
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- Recommendations repr


def test_recommendations_repr_is_short_and_shows_the_first_rows():
    m = hand_model(n_users=300, n_items=50)
    users = m.user_ids_.tolist() + ["nobody"]
    recs = recommend.recommend_many(m, users, n=10)
    text = repr(recs)
    lines = text.splitlines()
    assert len(lines) <= 5 and len(text) < 600
    assert lines[0] == "Recommendations(301 users, top 10, 1 fallback)"
    expected = reference_topn(reference_scores(m), 10, seen_of(m))
    first_items = m.item_ids_[expected[0][:5]].tolist()
    assert lines[1] == f"  {users[0]!r}: [{', '.join(map(repr, first_items))}, ...]"
    assert lines[-1] == "  ... and 298 more users"


def test_recommendations_repr_of_short_rows_and_folded_users():
    m = hand_model(n_users=5, n_items=3, max_seen=0)
    fu = fold_in.fold_in(m, {int(m.item_ids_[0]): 4.0})
    recs = recommend.recommend_many(m, [fu, m.user_ids_[1]], n=5)
    lines = repr(recs).splitlines()
    assert lines[0] == "Recommendations(2 users, top 3, 0 fallback)"
    assert lines[1].startswith("  FoldedUser: [") and lines[1].count(",") == 1  # 2 unseen items
    assert lines[2].startswith(f"  {int(m.user_ids_[1])!r}: [") and "..." not in lines[2]
    assert len(lines) == 3


# --------------------------------------------------------------------------- old import paths


def test_old_paths_re_export_the_same_objects():
    assert fastmf.recommend.recommend is recommend.recommend
    assert fastmf.recommend.recommend_many is recommend.recommend_many
    assert fastmf.recommend.similar_items is similar.similar_items
    assert fastmf.recommend.similar_users is similar.similar_users
    assert fastmf.recommend.fold_in is fold_in.fold_in
    assert fastmf.recommend.FoldedUser is results.FoldedUser is fastmf.FoldedUser
    assert fastmf.recommend.Recommendations is results.Recommendations
    assert fastmf.serialize.save is model_file.save is fastmf.save
    assert fastmf.serialize.load is model_file.load is fastmf.load
    assert fastmf.serialize.FORMAT_VERSION == schema.FORMAT_VERSION == 1
    assert fastmf.serialize.ModelFileError is fastmf.errors.ModelFileError
    assert fastmf._codec.Archive is container.Archive
    assert set(fastmf.recommend.__all__) <= set(dir(fastmf.recommend))
    assert set(fastmf.serialize.__all__) <= set(dir(fastmf.serialize))


# --------------------------------------------------------------------------- layout of the room

# Rooms above serve: a serve module may not import them (nor the package root).
ABOVE = ("fastmf.evaluate", "fastmf.cli", "fastmf.metrics", "fastmf.diagnose", "fastmf.tune",
         "fastmf.plot")  # fmt: skip
MODULES = sorted(SERVE.rglob("*.py"))


def _imports(tree: ast.AST) -> list[str]:
    """Modules imported anywhere in the tree (in functions too), except under TYPE_CHECKING."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "fastmf":
                out.extend(f"fastmf.{alias.name}" for alias in node.names)
                out.append("fastmf")
            else:
                out.append(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _function_lengths(tree: ast.AST) -> dict[str, int]:
    """Lines of every function, its docstring left out."""
    lengths = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if ast.get_docstring(node) is not None:
                doc = node.body[0]
                n -= doc.end_lineno - doc.lineno + 1
            lengths[node.name] = n
    return lengths


def test_the_room_holds_the_modules_it_names():
    names = {p.relative_to(SERVE).as_posix() for p in MODULES}
    assert {"fitted.py", "results.py", "recommend.py", "similar.py", "fold_in.py", "topk.py",
            "files/container.py", "files/model_file.py", "files/atomic.py"} <= names  # fmt: skip
    assert files.__doc__


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SERVE).as_posix())
def test_serve_modules_are_small_and_import_only_downwards(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400
    tree = ast.parse(text)
    long = {name: n for name, n in _function_lengths(tree).items() if n > 80}
    assert long == {}
    imported = _imports(tree)
    assert "fastmf" not in imported
    assert [m for m in imported if m.startswith(ABOVE)] == []


def test_the_layout_checks_can_fail():
    tree = ast.parse(
        "import fastmf\nfrom fastmf.metrics import x\n"
        "def f():\n    from fastmf.cli import y\n"
        "if TYPE_CHECKING:\n    from fastmf.tune import z\n"
        "def g():\n" + "    a = 1\n" * 81
    )
    assert _imports(tree) == ["fastmf", "fastmf.metrics", "fastmf.cli"]
    assert _function_lengths(tree)["g"] == 82
