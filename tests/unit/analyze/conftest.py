from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "models"


def _load_tiny_models() -> ModuleType:
    name = "photovault_test_tiny_models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FIXTURES / "tiny_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_models() -> ModuleType:
    return _load_tiny_models()


@pytest.fixture
def classifier_path(tiny_models: ModuleType, tmp_path: Path) -> Path:
    return tiny_models.build_classifier(tmp_path / "tiny.onnx", num_classes=10, side=8)
