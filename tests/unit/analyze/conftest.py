from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def clip_context(tiny_models: ModuleType, tmp_path: Path) -> object:
    """AnalyzerContext with a tiny CLIP-shaped model (32-px input, 8-d embedding)."""
    from photovault.analyze.context import AnalyzerContext
    from photovault.models.session import SessionFactory
    from photovault.models.store import ModelStore

    src = tiny_models.build_clip_dir(tmp_path / "clip-src")
    store = ModelStore(tmp_path / "models")
    store.import_dir(src)
    return AnalyzerContext(tmp_path, store, SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))
