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


#: The package's layers, lowest first: a folder (or top-level module) imports only from
#: lower layers (at module level or inside functions; `if TYPE_CHECKING:` imports are
#: type hints only). Leaves hold settings, result types and faults; the stages of the
#: flow sit above the stores they feed; the query service, the assembly (app.py) and
#: the commands are on top. README's "How it works" shows the same table.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "photovault",
        "config",
        "results",
        "problems",
        "versioning",
        "_blas",
        "_nopandas",
        "memory",
        "lifecycle",
    ),
    ("health", "metrics", "geo", "models", "catalog", "media"),
    ("analyze", "sidecar"),
    ("index", "pipeline", "watch"),
    ("people",),
    ("ops",),
    ("query",),
    ("app",),
    ("cli", "daemon_main"),
)


def _unit(path: Path) -> str:
    """The folder (or top-level module) a file belongs to: `index`, `app`, ..."""
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:
        return "photovault" if parts[0] == "__init__.py" else parts[0].removesuffix(".py")
    return parts[0]


def _all_imports(path: Path) -> set[str]:
    """Our modules a file imports anywhere, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    hints = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
        for n in ast.walk(node)
    }
    found: set[str] = set()
    for n in ast.walk(tree):
        if id(n) in hints:
            continue
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            found.add(n.module)
        elif isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
    return {m for m in found if m.split(".")[0] == "photovault"}


def test_each_folder_imports_only_from_lower_layers() -> None:
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    wrong: list[str] = []
    files = list(PACKAGE.rglob("*.py"))
    for path in files:
        src = _unit(path)
        if src not in rank:
            wrong.append(f"{path.relative_to(PACKAGE)}: {src} is in no layer (add it to LAYERS)")
            continue
        for module in sorted(_all_imports(path)):
            parts = module.split(".")
            dst = parts[1] if len(parts) > 1 else "photovault"
            if dst in (src, "photovault"):
                continue
            if rank.get(dst, len(LAYERS)) >= rank[src]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module} ({src} -> {dst})")
    assert len(files) > 50  # the walk found the package
    assert not wrong, "\n".join(wrong)
