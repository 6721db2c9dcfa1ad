"""The package's import graph: no module imports itself back through others at
import time (a cycle makes import order matter and hides a missing seam)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "photovault"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _module_level_imports(path: Path, known: set[str]) -> set[str]:
    """Our modules imported when `path` is imported (not inside functions, not
    under `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for n in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module in known:
                subs = {f"{n.module}.{a.name}" for a in n.names} & known
                # `from pkg import sub` loads the submodule; other names come from the module.
                found.update(subs if len(subs) == len(n.names) else subs | {n.module})
            elif isinstance(n, ast.Import):
                found.update(a.name for a in n.names if a.name in known)
    return found & known


def test_the_package_has_no_import_cycle() -> None:
    modules = _modules()
    assert len(modules) > 50  # the walk found the package
    graph = {name: _module_level_imports(p, set(modules)) for name, p in modules.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
