"""The layout's rules, read from the source: areas import only leftwards, no two files
import each other (directly or round a longer loop), and no folder is named like
build output."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
AREAS = ["core", "govern", "develop", "serve", "measure"]
#: Thin layers over the areas: they may call any area, and no area calls them. The
#: server is one (its routes are derived from the client's resources), and so is
#: ``serve.ray``, which runs the server and the stores on a cluster; the rest of
#: ``serve`` (traffic, logbook) is an area.
LAYERS = ("stoa.client", "stoa.cli", "stoa.ui", "stoa.demo", "stoa.serve.server",
          "stoa.serve.ray")  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "stoa").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the Stoa modules it imports anywhere in its body, lazy imports included."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _area(module: str) -> str:
    """The area a module belongs to, "layer" for the thin layers, "" for the package."""
    if any(module == layer or module.startswith(f"{layer}.") for layer in LAYERS):
        return "layer"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_tree_shows_the_areas_by_name() -> None:
    folders = {p.name for p in (SRC / "stoa").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert set(AREAS) <= folders
    assert not folders & {"build", "dist", "out", "tmp", "run"}, folders


def test_no_area_imports_rightwards_or_from_a_layer() -> None:
    graph = _imports(_modules())
    wrong = []
    for module, targets in graph.items():
        here = _area(module)
        for target in targets:
            there = _area(target)
            if here in AREAS and there == "layer":
                wrong.append(f"{module} -> {target} (an area calls a layer)")
            elif here in AREAS and there in AREAS and AREAS.index(there) > AREAS.index(here):
                wrong.append(f"{module} -> {target} ({here} imports {there})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_between_files() -> None:
    graph = _imports(_modules())
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("rule", ["leftwards", "cycle"])
def test_the_checks_above_can_fail(rule: str, tmp_path: Path, monkeypatch) -> None:
    """A planted violation is caught, so a green run means something."""
    pkg = tmp_path / "stoa"
    for area in ("core", "govern"):
        (pkg / area).mkdir(parents=True)
        (pkg / area / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    if rule == "leftwards":
        (pkg / "core" / "a.py").write_text("from stoa.govern import b\n")
        (pkg / "govern" / "b.py").write_text("")
        check = test_no_area_imports_rightwards_or_from_a_layer
    else:
        (pkg / "govern" / "a.py").write_text("from stoa.govern import b\n")
        (pkg / "govern" / "b.py").write_text("def f():\n    from stoa.govern import a\n")
        check = test_no_import_cycle_between_files
    monkeypatch.setattr(__import__(__name__, fromlist=["SRC"]), "SRC", tmp_path)
    with pytest.raises(AssertionError):
        check()
