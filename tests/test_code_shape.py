"""The code's shape, checked where a reviewer would otherwise have to: module and function
sizes, no import cycle among the project's modules, and a service that imports no torch."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "bench", "compression", "inference", "registry")
SERVICE_PACKAGES = ("app", "inference", "registry")  # what the torch-free image ships
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Declarative tables, exempt from the function limit: one statement per entry.
DECLARATIVE = {("app/metrics.py", "__init__")}  # the service's Prometheus metrics


def _sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text())
            for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def _import_graph() -> dict[str, set[str]]:
    """Every module's imports of the project's modules, at any depth of the file."""
    trees = {_module_name(path): tree for path, tree in _sources().items()}
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        graph[name] = set()
        for target in _imported_names(tree):
            while target and target not in trees:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def test_no_module_over_the_line_limit() -> None:
    lines = {path: len((ROOT / path).read_text().splitlines()) for path in _sources()}
    assert not {p: n for p, n in lines.items() if n > MAX_MODULE_LINES}


def test_no_function_over_the_line_limit() -> None:
    offenders = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _sources().items() for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        and (path, node.name) not in DECLARATIVE
    ]
    assert not offenders, offenders


def test_no_import_cycle_among_the_projects_modules() -> None:
    graph, state, cycles = _import_graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


def test_the_service_imports_neither_torch_nor_the_offline_package() -> None:
    forbidden = ("torch", "transformers", "compression", "bench")
    offenders = {path: sorted(n for n in _imported_names(tree) if n.split(".")[0] in forbidden)
                 for path, tree in _sources().items() if path.split("/")[0] in SERVICE_PACKAGES}
    assert not {p: n for p, n in offenders.items() if n}, offenders
