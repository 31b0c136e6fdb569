"""The import graph follows docs/architecture.md: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Module prefix -> layer. The most specific prefix wins.
LAYERS: dict[str, int] = {
    "newsletter.errors": 0,
    "newsletter.types": 0,
    "newsletter.clock": 0,
    "newsletter.config": 0,
    "newsletter.urls": 0,
    "newsletter.paths": 0,
    "newsletter.wording": 0,
    "newsletter.db": 1,
    "newsletter.render": 1,
    "newsletter.providers": 1,
    "newsletter.webhooks": 1,
    "newsletter.logs": 1,
    "newsletter.articles": 2,
    "newsletter.issues": 2,
    "subscribers": 2,
    "newsletter.catchup": 2,
    "newsletter.delivery": 3,
    "newsletter.runtime": 1,
    "newsletter.cli": 4,
    "newsletter.web": 4,
    "newsletter.scheduler": 4,
    "newsletter.pipeline": 4,
    "newsletter.worker": 4,
    "newsletter.health": 4,
    "newsletter.demo": 4,
    "newsletter.testing": 5,  # stand-ins for tests and benchmarks; production never imports them
}

# Imports allowed to go up a layer, with the reason.
EXCEPTIONS: set[tuple[str, str]] = set()


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS.items():
        matches = module == prefix or module.startswith(prefix + ".")
        if matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ("newsletter", "subscribers"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in ("newsletter", "subscribers")}


def test_every_module_has_a_layer() -> None:
    missing = [
        m for m in _modules() if _layer(m) is None and m not in ("newsletter", "subscribers")
    ]
    assert missing == []


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for module, path in _modules().items():
        own = _layer(module)
        if own is None:
            continue
        for imported in _imports(path):
            target = _layer(imported)
            if target is not None and target > own and (module, imported) not in EXCEPTIONS:
                violations.append(f"{module} (layer {own}) imports {imported} (layer {target})")
    assert violations == []


def test_the_sending_core_imports_no_concrete_provider() -> None:
    concrete = (
        "newsletter.providers.sendgrid",
        "newsletter.providers.smtp",
        "newsletter.providers.outbox",
    )
    for module, path in _modules().items():
        if module.startswith("newsletter.delivery"):
            assert not (_imports(path) & set(concrete)), module
