"""The import graph follows the map in docs/architecture.md, read from its two tables.

The tables are the only statement of the architecture: this test parses them, so the document
and the check cannot drift apart. Rules: no import of a higher layer, no circle between the
map's units (a unit is one row entry: a package such as `newsletter/db/` or a module), no
layer-4 entry point importing another, no concrete provider in the sending core; each
exception must be listed in "Allowed exceptions", and every listed exception must be in use.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("newsletter", "subscribers")
ENTRY_LAYER = 4


# --- the map, from docs/architecture.md -----------------------------------------------------


def _table(heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table under `## heading`, as lists of cells."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {heading}")
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert len(rows) > 2, f"no table under '## {heading}' in {DOC}"
    return rows[2:]  # header and separator


def _unit(path: str) -> str:
    """`newsletter/db/` -> `newsletter.db`, `newsletter/urls.py` -> `newsletter.urls`."""
    assert (ROOT / path).exists(), f"{DOC.name} names {path}, which does not exist"
    return path.removesuffix("/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _paths(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@cache
def layers() -> dict[str, int]:
    """Unit -> layer, from the "Layers" table."""
    found: dict[str, int] = {}
    for layer, modules, _job in _table("Layers"):
        for path in _paths(modules):
            unit = _unit(path)
            assert unit not in found, f"{path} is in two rows"
            found[unit] = int(layer)
    return found


@cache
def packages() -> frozenset[str]:
    """The units written as folders (`newsletter/db/`): they cover their submodules."""
    return frozenset(
        _unit(path)
        for _layer, modules, _job in _table("Layers")
        for path in _paths(modules)
        if path.endswith("/")
    )


@cache
def allowed() -> frozenset[tuple[str, str]]:
    """(from unit or module, to unit or module), from the "Allowed exceptions" table."""
    pairs = set()
    for source, target, why in _table("Allowed exceptions"):
        assert why, f"{source} -> {target} needs a reason"
        pairs.add((_unit(_paths(source)[0]), _unit(_paths(target)[0])))
    return frozenset(pairs)


def unit_of(module: str) -> str | None:
    """The most specific unit naming `module`: a module row itself, a folder row and below."""
    names = [
        unit
        for unit in layers()
        if module == unit or (module.startswith(unit + ".") and unit in packages())
    ]
    return max(names, key=len, default=None)


def layer_of(module: str) -> int | None:
    unit = unit_of(module)
    return None if unit is None else layers()[unit]


# --- the code --------------------------------------------------------------------------------


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module of `from ... import`, relative ones included."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def imports(module: str) -> frozenset[str]:
    """Every project module `module` imports, at any depth of its code."""
    path = modules()[module]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(module, path, node)
            names.add(origin)
            for alias in node.names:  # `from subscribers import consent` imports a module
                if f"{origin}.{alias.name}" in modules():
                    names.add(f"{origin}.{alias.name}")
    return frozenset(n for n in names if n.split(".")[0] in PACKAGES)


def edges() -> Iterator[tuple[str, str]]:
    """(importing module, imported module) for every project import."""
    for module in modules():
        for imported in imports(module):
            yield module, imported


def is_allowed(module: str, imported: str) -> bool:
    return any(_covers(a, module) and _covers(b, imported) for a, b in allowed())


def _covers(name: str, module: str) -> bool:
    return module == name or module.startswith(name + ".")


def _used_allowances() -> set[tuple[str, str]]:
    return {
        (a, b)
        for module, imported in edges()
        for a, b in allowed()
        if _covers(a, module) and _covers(b, imported)
    }


# --- the rules -------------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if unit_of(m) is None] == []


def test_relative_imports_are_resolved() -> None:
    node = ast.parse("from ..db import models").body[0]
    assert isinstance(node, ast.ImportFrom)
    target = ROOT / "newsletter" / "render" / "store.py"
    assert _resolve("newsletter.render.store", target, node) == "newsletter.db"
    package = ROOT / "newsletter" / "render" / "__init__.py"
    node = ast.parse("from .renderer import render").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve("newsletter.render", package, node) == "newsletter.render.renderer"


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for module, imported in edges():
        own, target = layer_of(module), layer_of(imported)
        if own is None or target is None or target <= own or is_allowed(module, imported):
            continue
        violations.append(f"{module} (layer {own}) imports {imported} (layer {target})")
    assert violations == []


def test_entry_points_do_not_import_each_other() -> None:
    violations = []
    for module, imported in edges():
        source, target = unit_of(module), unit_of(imported)
        if source == target or layer_of(module) != ENTRY_LAYER:
            continue
        if layer_of(imported) == ENTRY_LAYER and not is_allowed(module, imported):
            violations.append(f"{module} imports the entry point {imported}")
    assert violations == []


def test_no_import_cycles_between_units() -> None:
    graph: dict[str, set[str]] = {unit: set() for unit in layers()}
    for module, imported in edges():
        source, target = unit_of(module), unit_of(imported)
        if source and target and source != target and not is_allowed(module, imported):
            graph[source].add(target)
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def test_the_sending_core_imports_no_concrete_provider() -> None:
    concrete = {
        "newsletter.providers.sendgrid",
        "newsletter.providers.smtp",
        "newsletter.providers.outbox",
    }
    for module in modules():
        if module.startswith("newsletter.delivery"):
            assert not (imports(module) & concrete), module


def test_every_allowed_exception_is_still_needed() -> None:
    assert sorted(allowed() - _used_allowances()) == []


@pytest.mark.parametrize("unit", ["newsletter.logs", "newsletter.catchup", "newsletter.runtime"])
def test_the_map_names_the_small_top_level_modules(unit: str) -> None:
    assert unit in layers()


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of units that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
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
            group = set()
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.add(item)
                if item == node:
                    break
            groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return groups
