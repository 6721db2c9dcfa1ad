"""What the app hands every analyzer factory: `create(settings, context)`.

The context carries the edges an analyzer must not build itself (where state
lives, which models are installed, how sessions run), so tests can inject a
temporary store and a CPU-only factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing them here would load onnxruntime for every importer
    from photovault.models.session import SessionFactory
    from photovault.models.store import ModelStore


@dataclass
class AnalyzerContext:
    """Shared services for analyzers; built once in app.py."""

    state_dir: Path
    model_store: ModelStore
    session_factory: SessionFactory
