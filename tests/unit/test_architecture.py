"""The shape of the tree (issue 11), checked from the source text: function and module sizes, the import
graph (no circle), leaf modules that stay leaves, analyses that never render, and the two registries
(lint rules, renderers) whose entries all have the same shape."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import bilge

SRC = Path(bilge.__file__).parent
MAX_FUNCTION_LINES = 120
MAX_MODULE_LINES = 600

# The source/ readers dispatch to each other at call time (stored.read_store -> archive/layout readers ->
# stored): issue 11 leaves source/ to the registry work. Any other circle fails.
KNOWN_CIRCLES = [frozenset({"bilge.source.stored", "bilge.source.archive", "bilge.source.layout"})]

LEAVES = {  # vocabulary modules: nothing of bilge but errors
    "bilge.severity", "bilge.units", "bilge.history", "bilge.compression", "bilge.secrets.hit", "bilge.errors",
    "bilge.symlinks",
}
ANALYSES = ("bilge.analyze", "bilge.deps", "bilge.diff", "bilge.dockerfile", "bilge.secrets", "bilge.rewrite", "bilge.fs",
            "bilge.fstree", "bilge.probe", "bilge.layers", "bilge.history", "bilge.units", "bilge.severity")


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> set[str]:
    """Every bilge module ``name`` imports, at module level or inside functions (not under TYPE_CHECKING).
    ``from pkg import mod`` is an edge to ``pkg.mod`` alone when ``mod`` is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
                found.update(subs)
                if len(subs) < len(node.names):
                    found.add(base)
            for field in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    visit(sub)

    visit(ast.parse(path.read_text()).body)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports():
    # commands import their analyses inside the command function: those edges must be in the graph
    assert "bilge.analyze" in GRAPH["bilge.commands.analyze"]
    assert "bilge.deps.resolver" in GRAPH["bilge.deps"]


def test_no_import_circle():
    circles = [c for c in _circles(GRAPH) if c not in KNOWN_CIRCLES]
    assert circles == [], [sorted(c) for c in circles]


def test_no_function_over_120_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert long == []


def test_no_module_over_600_lines():
    big = [f"{name}: {n}" for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert big == []


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_vocabulary_modules_are_leaves(leaf):
    assert GRAPH[leaf] <= {"bilge.errors"}, GRAPH[leaf]


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("package", ANALYSES)
def test_analyses_never_render(package):
    """Analyses return data: nothing in them imports rich, bilge.format or bilge.commands."""
    for name, path in MODULES.items():
        if name != package and not name.startswith(package + "."):
            continue
        text = path.read_text()
        assert "import rich" not in text and "from rich" not in text, name
        bad = {m for m in GRAPH[name] if m.startswith(("bilge.format", "bilge.commands"))}
        assert not bad, (name, bad)


def test_every_lint_rule_module_has_the_same_shape():
    from bilge.dockerfile.rules import MEASURES, REGISTRY, RULES

    assert len(RULES) == len(REGISTRY)  # one module a rule, ids unique
    for module in REGISTRY:
        assert module.RULE.id == module.__name__.rpartition(".")[2].replace("_", "-")
        assert module.check is None or callable(module.check)
        assert module.measure is None or callable(module.measure)
    assert sum(m.check is not None for m in REGISTRY) >= len(REGISTRY) - 1
    rule_files = {p.stem for p in (SRC / "dockerfile" / "rules").glob("*.py")} - {"__init__", "base", "common"}
    assert rule_files == {m.__name__.rpartition(".")[2] for m in REGISTRY}  # no rule module left unregistered
    assert set(MEASURES) <= set(RULES)


def test_every_renderer_has_the_interface():
    from bilge.format.interface import RENDERERS

    for command, module_name in RENDERERS.items():
        module = importlib.import_module(module_name)
        assert module.SCHEMA.startswith("bilge."), command
        assert callable(module.to_json) and callable(module.render_text), command
