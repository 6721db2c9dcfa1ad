from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def classifier_path(tiny_models: ModuleType, tmp_path: Path) -> Path:
    return tiny_models.build_classifier(tmp_path / "tiny.onnx", num_classes=10, side=8)


@pytest.fixture
def tagger_dir(tiny_models: ModuleType, tmp_path: Path) -> Path:
    """A prepared, valid tagger folder (10 classes, 8-px input) ready to import."""
    from photovault.models.store import Manifest, describe_file, write_manifest

    src = tmp_path / "src"
    tiny_models.build_classifier(src / "model.onnx", num_classes=10, side=8)
    manifest = Manifest(
        name="tiny-tagger",
        task="tagger",
        architecture="tiny",
        input_size=8,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        files=(describe_file(src / "model.onnx", "image", "fp32"),),
        num_classes=10,
        source="tests",
        licence="CC0-1.0",
    )
    write_manifest(src, manifest)
    return src
