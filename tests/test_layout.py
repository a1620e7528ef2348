"""The package's modules depend on each other one way: no import cycles, not even inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sentiment_core"


def _imports(path: Path) -> set[str]:
    """Sibling modules a module imports, at top level or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If)
               and getattr(stmt.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        found |= {alias.name for alias in node.names} if node.module is None else {node.module.split(".")[0]}
    return found


def test_no_import_cycles_in_the_package():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {m: _imports(PACKAGE / f"{m}.py") & modules for m in modules}
    cycles = []

    def visit(module, trail):
        for nxt in graph[module]:
            if nxt in trail:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif len(trail) < len(modules):
                visit(nxt, trail + [nxt])

    for module in sorted(modules):
        visit(module, [module])
    assert not cycles, f"import cycles: {sorted({' -> '.join(c) for c in cycles})[:5]}"
