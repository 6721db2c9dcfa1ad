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


@pytest.fixture
def clip_context(tiny_models: ModuleType, tmp_path: Path) -> object:
    """AnalyzerContext with a tiny CLIP-shaped model (32-px input, 8-d embedding)."""
    from photovault.analyze.context import AnalyzerContext
    from photovault.analyze.session import SessionFactory
    from photovault.models.store import Manifest, ModelStore, describe_file, write_manifest

    src = tmp_path / "clip-src"
    tiny_models.build_image_encoder(src / "image.onnx", dim=8, side=32)
    tiny_models.build_text_encoder(src / "text.onnx", dim=8)
    write_manifest(
        src,
        Manifest(
            name="tiny-clip",
            task="clip",
            architecture="tiny",
            input_size=32,
            mean=(0.48145466, 0.4578275, 0.40821073),
            std=(0.26862954, 0.26130258, 0.27577711),
            files=(
                describe_file(src / "image.onnx", "image", "fp32"),
                describe_file(src / "text.onnx", "text", "fp32"),
            ),
            embedding_dim=8,
            extra={"context_length": 77, "crop_fraction": 1.0},
        ),
    )
    store = ModelStore(tmp_path / "models")
    store.import_dir(src)
    return AnalyzerContext(tmp_path, store, SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))
