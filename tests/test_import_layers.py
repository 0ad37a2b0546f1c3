"""The package layers, computed from the code: a new import that runs against them fails here.

Every top-level package of the project has a place in :data:`LAYERS` (lower
number = lower floor). A module may import its own package and packages on a
lower floor; libraries never import Airflow or a front end (``sta``,
``pipeline``, ``operators``, ``plugins``, ``dags``) nor the test/demo tools
(``synth``, ``tests``). Package-level cycles fail too, also among packages a
future edit might put on the same floor. A top-level package missing from the
map fails, so nobody forgets to place a new one.

Imports are read with ``ast`` from every ``.py`` file (function-level and
``TYPE_CHECKING`` imports included: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent

#: Floor of each top-level package; imports go to a lower floor (or the same package).
LAYERS: dict[str, int] = {
    # ground floor: configuration, paths, reasons, schemas, OCR primitives
    "foundation": 0,
    # libraries: plain Python, usable from a CLI, no Airflow
    "anonymization": 10,
    "transforms": 20,
    "labelling": 30,
    "medication": 40,
    "expectations": 50,
    "delivery": 60,
    "deployment": 70,
    # stage runner (no Airflow)
    "pipeline": 100,
    # front ends
    "sta": 200,
    "operators": 210,
    "plugins": 220,
    "dags": 230,
    # tools outside the product
    "synth": 300,
    "scripts": 400,
    "bench": 400,
    "tests": 500,
}

LIBRARIES = {"foundation", "anonymization", "transforms", "labelling", "medication", "expectations", "delivery",
             "deployment"}
#: What a library (and the stage runner) must never import, whatever the floors say.
FORBIDDEN_FOR_LIBRARIES = {"airflow", "sta", "pipeline", "operators", "plugins", "dags", "synth", "tests", "scripts",
                           "bench"}
FORBIDDEN_FOR_PIPELINE = {"airflow", "sta", "operators", "plugins", "dags", "synth", "tests", "scripts", "bench"}

SKIP_DIRS = {".venv", ".git", ".airflow", "data", "test-artifacts", "node_modules", "__pycache__", "build", "dist"}


def _python_files() -> list[Path]:
    out = []
    for path in PROJECT.rglob("*.py"):
        rel = path.relative_to(PROJECT)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        out.append(rel)
    return sorted(out)


def _top(rel: Path) -> str | None:
    """The top-level package a file belongs to (None for a loose file at the project root)."""
    return rel.parts[0] if len(rel.parts) > 1 else None


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(rel: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    tree = ast.parse((PROJECT / rel).read_text(encoding="utf-8"), filename=str(rel))
    package = _module_name(rel).split(".")
    if rel.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


@lru_cache(maxsize=1)
def _graph() -> dict[str, dict[str, set[str]]]:
    """top-level package -> imported project package (or 'airflow') -> files importing it."""
    tops = {p for p in LAYERS} | {_top(r) for r in _python_files() if _top(r)}
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for rel in _python_files():
        src = _top(rel)
        if src is None:
            continue
        for mod in _imports(rel):
            head = mod.split(".")[0]
            if head == src:
                continue
            if head in tops or head == "airflow":
                graph[src][head].add(str(rel))
    return graph


def _project_packages() -> set[str]:
    return {t for r in _python_files() if (t := _top(r))}


def test_every_top_level_package_has_a_floor():
    unknown = sorted(_project_packages() - set(LAYERS))
    assert not unknown, (
        f"top-level folders with Python code but no floor in LAYERS: {unknown}; "
        "place them in tests/test_import_layers.py (and README's Layout)"
    )


def test_libraries_import_no_airflow_front_end_or_tools():
    bad = [
        f"{f} imports {target}"
        for src in sorted(LIBRARIES)
        for target, files in sorted(_graph().get(src, {}).items())
        if target in FORBIDDEN_FOR_LIBRARIES
        for f in sorted(files)
    ]
    assert not bad, "libraries must stay plain Python:\n" + "\n".join(bad)


def test_stage_runner_imports_no_airflow_or_front_end():
    bad = [f"{f} imports {target}" for target, files in sorted(_graph().get("pipeline", {}).items())
           if target in FORBIDDEN_FOR_PIPELINE for f in sorted(files)]
    assert not bad, "pipeline/ runs without Airflow:\n" + "\n".join(bad)


def test_imports_go_down_the_floors():
    bad = []
    for src, targets in sorted(_graph().items()):
        for target, files in sorted(targets.items()):
            if target == "airflow" or src not in LAYERS or target not in LAYERS:
                continue
            if LAYERS[target] >= LAYERS[src]:
                bad.extend(f"{f} ({src}, floor {LAYERS[src]}) imports {target} (floor {LAYERS[target]})"
                           for f in sorted(files))
    assert not bad, "imports must go to a lower floor:\n" + "\n".join(bad)


def test_no_package_cycles():
    graph = {src: {t for t in targets if t != "airflow"} for src, targets in _graph().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "package cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checker_reads_lazy_imports():
    """The parser resolves relative and lazy imports (else every test above passes vacuously)."""
    assert "foundation" in _graph()["pipeline"]
    assert "airflow" in _graph()["operators"]
    assert "pipeline" in _graph()["operators"]
