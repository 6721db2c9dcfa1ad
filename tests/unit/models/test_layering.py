"""`models/` is split by when it runs: torch only in `models/export/`, and
nothing in `models/` imports `analyze/` (not even inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parents[3] / "daemon" / "photovault" / "models"


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def test_no_module_in_models_imports_analyze() -> None:
    paths = sorted(MODELS.rglob("*.py"))
    assert paths  # the walk found the package
    offenders = {
        str(p.relative_to(MODELS)): sorted(
            m for m in _imported_modules(p) if m.startswith("photovault.analyze")
        )
        for p in paths
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_exporters_import_torch_or_open_clip() -> None:
    heavy = {"torch", "torchvision", "open_clip"}
    exporters = MODELS / "export"
    offenders = [
        str(p.relative_to(MODELS))
        for p in sorted(MODELS.rglob("*.py"))
        if not p.is_relative_to(exporters) and heavy & {_top(m) for m in _imported_modules(p)}
    ]
    assert (exporters / "clip.py").is_file()
    assert offenders == []
