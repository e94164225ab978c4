"""The package's shape: no module imports (directly or through others) a module that imports it;
and the suite's own footprint: `tiny:` models are built in its temporary directory."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph() -> dict[str, set[str]]:
    """dreamjourney module -> the dreamjourney modules it imports, at the top or inside a function."""
    modules = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_cycles():
    graph = import_graph()
    assert "dreamjourney.camera.cameras" in graph["dreamjourney.data.anyview"]  # it sees imports
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_tiny_models_of_the_suite_go_to_its_temp_dir(tmp_path_factory):
    """Every test that runs a `tiny` preset (in-process, or a command it starts with the same
    environment) builds into the session's temporary directory (`tests/conftest.py`, autouse),
    never `~/.cache`; this test asks for no fixture that would set it up."""
    from dreamjourney.models.tiny import tiny_dir

    assert tiny_dir().parent == tmp_path_factory.getbasetemp()
    assert tiny_dir().name.startswith("tiny-models")
