"""The app's import arrows point down its layers, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

# Bottom first. A unit is a package under app/ or a module at its top (app/deps.py is "deps").
# A unit may import units of its own layer and the layers below it, never one above.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"rules", "instruments"}),  # pure: standard library only
    frozenset({"core"}),  # config, database, errors, security, the plumbing every request runs on
    frozenset({  # the domains, the request pipeline their routers run through, and what they share
        "identity", "deps", "audit", "pipeline", "routing", "webhooks", "patients", "courses", "sessions",
        "formulations", "measures", "models", "health", "background", "exports", "groups",
    }),
    frozenset({"fhir", "research"}),  # views that read across the domains
    frozenset({"main"}),  # the application factory
    frozenset({"demo"}),  # the demo organization, made through the domains' services
    frozenset({"cli"}),  # the `ipt` command, assembling every package's commands
)
PURE = frozenset({"rules", "instruments"})  # import nothing of the app


def _module_name(path: Path) -> str:
    parts = ["app", *path.relative_to(APP).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in APP.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The app modules ``name`` imports, at any depth (inside functions and TYPE_CHECKING blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from app.audit import writer` imports the module app.audit.writer; `from app.x import name`, app.x.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t == "app" or t.startswith("app."))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "app"


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def test_every_unit_of_the_app_has_a_layer():
    units = {_unit(m) for m in MODULES} - {"app"}
    placed = set().union(*LAYERS)
    assert units - placed == set(), "place these packages or modules in LAYERS"
    assert placed - units == set(), "LAYERS names units the app no longer has"


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items() if _unit(module) != "app"
        for target in targets
        if _unit(target) == "app" or _layer(_unit(target)) > _layer(_unit(module))
    )
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_rules_and_instruments_import_nothing_of_the_app():
    impure = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items() if _unit(module) in PURE
        for target in targets if _unit(target) != _unit(module)
    )
    assert not impure, "the pure packages import the app:\n" + "\n".join(impure)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
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
    return sorted(found)


def test_no_modules_import_each_other_in_a_circle():
    cycles = _cycles(GRAPH)
    assert not cycles, "modules importing each other in a circle:\n" + "\n".join(map(" <-> ".join, cycles))


def test_the_cycle_finder_finds_a_circle_across_packages():
    graph = {"app.cli": {"app.demo"}, "app.demo": {"app.cli", "app.core.db"}, "app.core.db": set()}
    assert _cycles(graph) == [["app.cli", "app.demo"]]
