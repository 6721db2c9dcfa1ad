"""Analyzer lookup: `[analyzers] enabled` names -> modules with a `create()` factory.

Adding an analyzer is one module in `photovault.analyze` exposing
`create(settings, context) -> Analyzer`, plus one line in KNOWN. An analyzer
that fails to load (missing model, broken file) is disabled with a message
naming the reason while the others keep running.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from photovault.analyze.base import Analyzer
from photovault.results import parse_signature

__all__ = ["KNOWN", "LoadedAnalyzers", "load", "parse_signature"]

log = logging.getLogger(__name__)

KNOWN: dict[str, str] = {
    "metadata": "photovault.analyze.metadata",
    "clip": "photovault.analyze.clip",
    "tags": "photovault.analyze.tags",
    "tagger": "photovault.analyze.tagger",
    "faces": "photovault.analyze.faces",
    "text": "photovault.analyze.text",
}


@dataclass
class LoadedAnalyzers:
    active: list[Analyzer] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)  # name -> reason

    @property
    def signature(self) -> str:
        return ",".join(f"{a.name}:{a.version}" for a in self.active)

    @property
    def image_side(self) -> int:
        return max((a.image_side for a in self.active), default=0)

    def close(self) -> None:
        for a in self.active:
            try:
                a.close()
            except Exception:
                log.exception("closing analyzer %s failed", a.name)


def load(names: list[str], settings: Any, context: Any) -> LoadedAnalyzers:
    """Create the enabled analyzers in order; disable (not crash on) broken ones."""
    out = LoadedAnalyzers()
    for name in names:
        module_name = KNOWN.get(name)
        if module_name is None:
            out.disabled[name] = f"unknown analyzer (known: {', '.join(sorted(KNOWN))})"
            continue
        try:
            module = importlib.import_module(module_name)
            analyzer = module.create(settings, context)
        except ModuleNotFoundError as exc:
            out.disabled[name] = f"not available in this installation ({exc.name} missing)"
        except Exception as exc:
            out.disabled[name] = f"{type(exc).__name__}: {exc}"
        else:
            missing = [r for r in analyzer.requires if r not in {a.name for a in out.active}]
            if missing:
                out.disabled[name] = f"needs {', '.join(missing)} enabled before it"
                analyzer.close()
                continue
            out.active.append(analyzer)
            continue
        log.error("analyzer %s disabled: %s", name, out.disabled[name])
    for name, reason in out.disabled.items():
        if name in KNOWN and "needs" in reason:
            log.error("analyzer %s disabled: %s", name, reason)
    return out
