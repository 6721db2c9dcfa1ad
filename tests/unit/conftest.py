"""Real-weight fixtures for the faces tests.

The face packages are optional extras; tests that need them skip with the
pip command that installs them. Weights come from the face-recognition-models
wheel on disk; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).parents[1] / "fixtures" / "faces"
INSTALL = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
HAVE_DLIB = all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models"))
HAVE_DEEPFACE = HAVE_DLIB and all(
    importlib.util.find_spec(m) for m in ("deepface", "cv2", "werkzeug")
)

needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason=f"face packages missing: {INSTALL}")
needs_deepface = pytest.mark.skipif(
    not HAVE_DEEPFACE,
    reason="deepface missing: pip install deepface==0.0.103 "
    "'opencv-contrib-python-headless>=4.9,<5' werkzeug",
)


def load(name: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / name).convert("RGB"))


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Labelled real photos: file name -> RGB pixels (see tests/fixtures/faces/README.md)."""
    from skimage import data

    out = {p.stem: load(p.name) for p in sorted(FIXTURES.glob("*.jpg"))}
    out["astronaut"] = data.astronaut()
    return out


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faces-state")


@pytest.fixture(scope="session")
def analyzer(state_dir: Path):
    """The default analyzer (dlib engine, HOG + MTCNN), built once: loading takes ~1 s."""
    if not HAVE_DLIB:
        pytest.skip(f"face packages missing: {INSTALL}")
    from photovault.analyze.faces import FacesAnalyzer, FaceSettings, build_engine

    cfg = FaceSettings()
    return FacesAnalyzer(build_engine(cfg, state_dir), cfg)


@pytest.fixture(scope="session")
def labelled_faces(analyzer) -> list[tuple[str, list[dict]]]:
    """[(file name, faces as the analyzer gives them)] of the labelled real photos
    (tests/fixtures/faces/labelled), decoded as vaultd decodes them (1024 px)."""
    from helpers.labelled_faces import photos as labelled_photos
    from photovault.media.decode import decode_image

    return [
        (p.name, analyzer.analyze_pixels(decode_image(p, 1024).pixels)["faces"])
        for p in labelled_photos()
    ]
