"""The package's layout keeps its promises: small rooms, short functions, imports pointing down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastmf"
MODULE_LINES = 400
KERNEL_MODULE_LINES = 800
FUNCTION_LINES = 80

# The rooms from the bottom up: a module may import only from its own room or from rooms below
# it. The top-level modules that only re-export (fastmf/split.py and the like) stand above all.
# fmt: off
LAYERS = (
    (
        "fastmf._version", "fastmf.errors", "fastmf._validation", "fastmf._random",
        "fastmf._stats", "fastmf._biases", "fastmf._threads", "fastmf._services",
        "fastmf._kernels",
    ),
    ("fastmf.data",),
    ("fastmf.train",),
    ("fastmf.serve",),
    ("fastmf.evaluate",),
    ("fastmf.dask",),
    ("fastmf.cli",),
)
# fmt: on


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_kernel_module(name: str) -> bool:
    return "kernels" in name


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (their imports are not arrows)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(name: str, path: Path) -> set[str]:
    """The fastmf modules ``name`` imports, anywhere in its file (inside functions too)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fastmf"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("fastmf"):
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    limit = KERNEL_MODULE_LINES if _is_kernel_module(name) else MODULE_LINES
    n = len(MODULES[name].read_text().splitlines())
    assert n <= limit, f"{name} has {n} lines (at most {limit})"


def _docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            return body[0].end_lineno - body[0].lineno + 1
    return 0


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not _is_kernel_module(n)))
def test_function_size(name):
    tree = ast.parse(MODULES[name].read_text())
    long = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
            if n > FUNCTION_LINES:
                long.append(f"{node.name} ({n} lines)")
    assert not long, f"{name}: functions over {FUNCTION_LINES} lines: {', '.join(long)}"


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (cycle := visit(name)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_imports_point_down():
    upward = []
    for name, targets in GRAPH.items():
        here = _layer(name)
        if here is None:
            continue
        for target in targets:
            there = _layer(target)
            if there is not None and there > here:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports pointing up: " + ", ".join(sorted(upward))


def test_nothing_imports_the_package_root():
    offenders = sorted(n for n, targets in GRAPH.items() if "fastmf" in targets and n != "fastmf")
    assert not offenders, f"these import fastmf's __init__ (a cycle through it): {offenders}"
