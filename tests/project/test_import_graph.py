"""The house's import graph, read from the modules' own imports (``ast``: every ``import`` in the source, in
functions too, relative ones resolved), never by importing them.

No circle among the product modules; the layers point one way (``attribution`` imports neither ``exporters`` nor
``space``, ``exporters`` imports no ``space``); the app and the command line import nothing from each other (the
command line finds the app's ``serve`` through its entry point, a string); the Spaces entry file imports the app
only. The checks are tried on small planted trees first, so that a check that cannot fail would show.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGES = ("attribution", "exporters", "space")
APP, CLI = "space.gradio_app", "space.cli"


def product_modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every module of the product packages under ``root``."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Every dotted name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``), relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the product modules it imports (an imported name is its longest product-module prefix)."""
    modules = product_modules(root)
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(name, path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def crossings(graph: dict[str, set[str]], source: str, forbidden: tuple[str, ...]) -> list[tuple[str, str]]:
    """(importer, imported) pairs from modules in ``source`` (a package or module) to any in ``forbidden``."""

    def inside(module: str, package: str) -> bool:
        return module == package or module.startswith(f"{package}.")

    return sorted(
        (module, imported)
        for module, imports in graph.items()
        if inside(module, source)
        for imported in imports
        if any(inside(imported, other) for other in forbidden)
    )


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(REPO)


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_checks_see_a_planted_circle_and_a_planted_crossing(tmp_path: Path) -> None:
    """A relative import inside a function closes a circle; an absolute one crosses from the app into the CLI."""
    root = _plant(
        tmp_path,
        {
            "attribution/__init__.py": "",
            "attribution/a.py": "from attribution import b\n",
            "attribution/b.py": "def f():\n    from .c import g\n",
            "attribution/c.py": "import attribution.a as a\n",
            "exporters/__init__.py": "",
            "space/__init__.py": "",
            "space/cli/__init__.py": "",
            "space/gradio_app/__init__.py": "",
            "space/gradio_app/tabs/__init__.py": "",
            "space/gradio_app/tabs/x.py": "from ...cli import main\nimport os\n",
        },
    )
    planted = import_graph(root)
    assert planted["attribution.b"] == {"attribution.c"} and planted["space.gradio_app.tabs.x"] == {"space.cli"}
    assert circles(planted) == [["attribution.a", "attribution.b", "attribution.c"]]
    assert crossings(planted, APP, (CLI,)) == [("space.gradio_app.tabs.x", "space.cli")]
    assert crossings(planted, CLI, (APP,)) == []


def test_the_graph_covers_the_product(graph: dict[str, set[str]]) -> None:
    assert {"attribution.results", "exporters.base", "space.app", f"{CLI}.commands.export", f"{APP}.tabs.graph"} <= set(
        graph
    )
    assert f"{CLI}.common" in graph[f"{CLI}.commands.graph"]  # the probe sees real edges
    assert "attribution.contributions.roots" in graph[f"{APP}.tabs.graph"]


def test_no_import_circle_anywhere_in_the_house(graph: dict[str, set[str]]) -> None:
    assert circles(graph) == []


def test_the_layers_point_one_way(graph: dict[str, set[str]]) -> None:
    """The library imports neither the exporters nor the wiring; the exporters import no wiring."""
    assert crossings(graph, "attribution", ("exporters", "space")) == []
    assert crossings(graph, "exporters", ("space",)) == []


def test_the_app_and_the_command_line_import_nothing_from_each_other(graph: dict[str, set[str]]) -> None:
    assert crossings(graph, CLI, (APP, "space.app")) == []
    assert crossings(graph, APP, (CLI,)) == []


def test_the_spaces_entry_file_imports_the_app_only(graph: dict[str, set[str]]) -> None:
    assert graph["space.app"] == {f"{APP}.serve"}
