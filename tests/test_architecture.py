"""Import rules of the package (docs/architecture.md): no import circles, no upward or sideways imports.

Every module of ``src/lit_vision`` is parsed with ``ast``; every ``import`` counts, at module level and
inside functions alike (a function-level import must not hide a forbidden direction or a circle).
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "lit_vision"

# Layer rank of each top-level unit: a unit may import itself and any unit of a lower rank. Units of the
# same rank are peers and do not import each other (except PEER_EXCEPTIONS).
RANKS: dict[str, int] = {
    "errors": 0,
    "utils": 1,
    "config": 2,
    "data": 3,
    "nets": 3,
    "optim": 3,
    "tasks": 4,
    "viz": 5,
    "callbacks": 6,
    "inference": 6,
    "runs": 7,
    "cli": 8,
}
# optimizers expand the `head` alias of lr_multipliers with the net's head names (nets.heads); nets
# never import optim, so this is one-way.
PEER_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset({("optim", "nets")})
# Units outside the ranking, with exactly what they may import.
EXTRA: dict[str, frozenset[str]] = {
    # the package's __init__ registers the OmegaConf resolvers and the Trainer schema
    "": frozenset({"errors", "utils", "config"}),
    "tools": frozenset({"tools", "errors", "utils", "config", "data", "viz"}),
}
# Anything may read the package root (``lit_vision.__version__``): importing any submodule runs it first.
IMPORTABLE_BY_ALL = frozenset({""})


@dataclass(frozen=True)
class Edge:
    """One import statement: ``source`` module imports ``target`` module at ``line``."""

    source: str
    target: str
    line: int
    function_level: bool


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package_dir``."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(name: str, known: Mapping[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return name


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names an import statement can load (``from a import b`` may load ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    return [origin, *(f"{origin}.{alias.name}" for alias in node.names if alias.name != "*")]


class _ImportVisitor(ast.NodeVisitor):
    """Collects import statements with whether they sit inside a function."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self._depth = 0

    def _function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._depth > 0))

    visit_ImportFrom = visit_Import


def import_edges(package_dir: Path, package: str) -> list[Edge]:
    """Every import of a module of ``package`` by a module of ``package``."""
    known = module_names(package_dir, package)
    edges = []
    for module, path in known.items():
        visitor = _ImportVisitor()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for node, in_function in visitor.found:
            names = _imported_names(node, module, path.name == "__init__.py")
            targets = {_resolve(n, known) for n in names if n == package or n.startswith(package + ".")}
            # `from a import b` of a plain name resolves to `a` as well as to `a.b`: keep the deepest
            targets = {t for t in targets if not any(o != t and o.startswith(t + ".") for o in targets)}
            edges += [Edge(module, t, node.lineno, in_function) for t in sorted(targets) if t != module]
    return edges


def unit_of(module: str) -> str:
    """The top-level unit (``data``, ``errors``...) of a dotted module name; ``""`` for the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def allowed(source: str, target: str) -> bool:
    """Whether unit ``source`` may import unit ``target``."""
    if source == target or target in IMPORTABLE_BY_ALL:
        return True
    if source in EXTRA:
        return target in EXTRA[source]
    if source not in RANKS or target not in RANKS:
        return False
    return RANKS[target] < RANKS[source] or (source, target) in PEER_EXCEPTIONS


def forbidden(edges: Iterable[Edge]) -> list[str]:
    """A line per import that goes in a forbidden direction."""
    return [
        f"{e.source} (line {e.line}{', in a function' if e.function_level else ''}) imports {e.target}: "
        f"{unit_of(e.source) or 'the package root'} may not import {unit_of(e.target) or 'the root'}"
        for e in edges
        if not allowed(unit_of(e.source), unit_of(e.target))
    ]


def cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Import circles between modules: the strongly connected components with more than one module."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --- the real package ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(PACKAGE_DIR, "lit_vision")


def test_every_unit_has_a_layer():
    units = {unit_of(module) for module in module_names(PACKAGE_DIR, "lit_vision")}
    unknown = units - set(RANKS) - set(EXTRA)
    assert not unknown, f"give these a place in RANKS or EXTRA (docs/architecture.md): {sorted(unknown)}"


def test_the_walk_sees_function_level_imports(edges):
    # cli.train imports runs.run inside its task function (start-up speed): it must be in the graph
    assert any(
        e.source == "lit_vision.cli.train" and e.target == "lit_vision.runs.run" and e.function_level
        for e in edges
    )


def test_no_forbidden_import_direction(edges):
    problems = forbidden(edges)
    assert not problems, "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_no_import_circle(edges):
    found = cycles(edges)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_nothing_imports_cli(edges):
    importers = [e.source for e in edges if unit_of(e.target) == "cli" and unit_of(e.source) != "cli"]
    assert not importers


# --- the checker itself, on a planted package ----------------------------------------------------------


def _write_package(root: Path, files: Mapping[str, str]) -> Path:
    package = root / "fakepkg"
    for rel, text in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return package


CLEAN = {
    "__init__.py": "",
    "errors.py": "class UserError(Exception):\n    pass\n",
    "data/__init__.py": "",
    "data/reader.py": "from fakepkg.errors import UserError\n",
    "tasks/__init__.py": "",
    "tasks/base.py": "from fakepkg.data.reader import UserError\n",
}


def _check(tmp_path: Path, files: Mapping[str, str]) -> tuple[list[str], list[list[str]]]:
    edges = import_edges(_write_package(tmp_path, files), "fakepkg")
    return forbidden(edges), cycles(edges)


def test_checker_passes_a_clean_package(tmp_path):
    assert _check(tmp_path, CLEAN) == ([], [])


def test_checker_catches_an_upward_import_hidden_in_a_function(tmp_path):
    files = dict(CLEAN)
    files["data/reader.py"] += (
        "\n\ndef load():\n    from fakepkg.tasks.base import UserError\n    return UserError\n"
    )
    problems, _ = _check(tmp_path, files)
    assert len(problems) == 1
    assert "fakepkg.data.reader (line 5, in a function) imports fakepkg.tasks.base" in problems[0]


def test_checker_catches_a_relative_upward_import(tmp_path):
    files = dict(CLEAN)
    files["data/reader.py"] += "from ..tasks import base\n"
    problems, _ = _check(tmp_path, files)
    assert len(problems) == 1 and "imports fakepkg.tasks.base" in problems[0]


def test_checker_catches_a_sideways_import_between_peers(tmp_path):
    files = dict(CLEAN)
    files["nets/__init__.py"] = ""
    files["nets/cnn.py"] = "from fakepkg.data import reader\n"
    problems, _ = _check(tmp_path, files)
    assert len(problems) == 1 and "nets may not import data" in problems[0]


def test_checker_catches_a_circle_hidden_in_a_function(tmp_path):
    files = dict(CLEAN)
    files["data/split.py"] = "from fakepkg.data.reader import UserError\n"
    files["data/reader.py"] += "\n\ndef split():\n    import fakepkg.data.split\n"
    problems, found = _check(tmp_path, files)
    assert problems == []
    assert found == [["fakepkg.data.reader", "fakepkg.data.split"]]


def test_checker_catches_an_unknown_unit(tmp_path):
    files = dict(CLEAN)
    files["data/reader.py"] += "import fakepkg.misc.helpers\n"
    files["misc/__init__.py"] = ""
    files["misc/helpers.py"] = ""
    problems, _ = _check(tmp_path, files)
    assert len(problems) == 1 and "data may not import misc" in problems[0]
