"""The package's layers, as its folders show them: each module imports only from its own layer or
those below, and no modules import each other in a circle, not inside functions, not even for type
hints (``if TYPE_CHECKING:``)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sentiment_core"
# Lowest first. A module may import from its own layer and any layer before it.
LAYERS = [
    {"errors", "reporting", "system"},
    {"data"},
    {"training"},
    {"tracking"},
    {"comparison"},
    {"tuning"},
    {"cli"},
]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (functions, TYPE_CHECKING blocks too)."""
    here = module_name(path).split(".")
    package = here[:-1] if path.name != "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if not (node.module or "").startswith("sentiment_core"):
                continue
            base = node.module.split(".")[1:]
        else:
            base = (package[: len(package) - node.level + 1] if node.level > 1 else package) + (
                node.module.split(".") if node.module else [])
        for alias in node.names:
            candidate = ".".join(base + [alias.name])
            found.add(candidate if (PACKAGE / (candidate.replace(".", "/") + ".py")).exists() else ".".join(base))
    return {m for m in found if m and m != "__init__"}


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. Importing a package counts as importing what its
    ``__init__`` re-exports (the modules that define those names)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    raw = {name: imports(path) for name, path in paths.items()}

    def expand(target: str, seen=()) -> set[str]:
        init = f"{target}.__init__" if target else "__init__"
        if init in raw and target not in seen:
            return set().union(*(expand(m, seen + (target,)) for m in raw[init])) if raw[init] else set()
        return {target} if target in raw else set()

    return {name: set().union(*(expand(t) for t in targets)) - {name} if targets else set()
            for name, targets in raw.items() if not name.endswith("__init__")}


def test_every_module_sits_in_a_layer():
    assert [m for m in graph() if not any(m.split(".")[0] in names for names in LAYERS)] == []


def test_no_import_runs_up_a_layer():
    upward = sorted(f"{m} -> {target}" for m, targets in graph().items() for target in targets
                    if layer_of(target) > layer_of(m))
    assert not upward, upward


def test_no_import_cycles_in_the_package():
    edges = graph()
    assert len(edges) > 30 and sum(map(len, edges.values())) > 100  # the walk sees the imports
    cycles = []

    def visit(module, trail):
        for nxt in edges[module]:
            if nxt in trail:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            else:
                visit(nxt, trail + [nxt])

    for module in sorted(edges):
        visit(module, [module])
    assert not cycles, f"import cycles: {sorted({' -> '.join(c) for c in cycles})[:5]}"
