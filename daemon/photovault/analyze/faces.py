"""The `faces` analyzer: find faces, keep their boxes and a recognition embedding.

Two engines sit behind one config (`[faces]`, see `FaceSettings`):

* **dlib** (the default, fully offline). Recognition model `Dlib`
  (dlib's ResNet, 128-d, 99.38% on LFW) whose weights come from the CC0
  `face-recognition-models` pip package; nothing is downloaded. We call dlib
  directly instead of through deepface because deepface's Dlib path feeds
  the network an eye-aligned crop resized to 150x150, while the network was
  trained on dlib's own 5-landmark chips (`get_face_chip`, 25% padding):
  the direct path is the one the published accuracy refers to, and it skips
  deepface's extra detector pass. Detectors: `dlib+mtcnn` (the default: HOG,
  plus the faces MTCNN finds that HOG does not), `dlib` (HOG, ships with dlib),
  `mtcnn_onnx` (MTCNN alone, see `MtcnnDetector`), `dlib_cnn` (MMOD CNN, ships
  in face-recognition-models; finds turned faces HOG misses, ~15x slower on a
  CPU) and `opencv` (Haar cascade, ships in opencv 4.x wheels; not in 5.x).
  Why dlib+mtcnn (bench/faces.py, 21 labelled photos at 1024 px on 2 cores):
  HOG alone misses faces turned to profile (the cameraman) and a child's
  turned face; MTCNN finds them and every labelled face, with no false hits on
  faceless photos, for ~0.04-0.1 s more per photo (HOG+embedding 0.26-0.30 s,
  both 0.30-0.38 s; dlib_cnn 3.4 s). HOG's faces keep their boxes and
  embeddings, so people do not move when photos are analysed again.
* **deepface** for every other model (ArcFace, Facenet512, SFace ...) and
  detector (retinaface, yunet, mtcnn ...). These download their weights on
  first use, so they need network once; deepface runs on onnxruntime here,
  no tensorflow (`DEEPFACE_BACKEND_ENGINE=onnx` unless the environment says
  otherwise).

Both engines share one weights folder, `<state_dir>/deepface/.deepface/weights`
(`DEEPFACE_HOME=<state_dir>/deepface`): the dlib files are copied there from
the pip package on first start, so deepface finds them too and never tries to
download them.

Boxes are normalised (x, y, w, h in [0, 1], top-left origin) in the oriented
image the analyzer receives, so they do not depend on the working size.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.faceengines import (
    DLIB_DETECTORS,
    DLIB_FILES,
    DeepFaceEngine,
    DlibEngine,
    Face,
    FaceEngine,
    deepface_home,
    install_dlib_weights,
    weights_dir,
)
from photovault.analyze.mtcnn import MtcnnDetector, packaged_mtcnn_models
from photovault.config import FaceSettings

log = logging.getLogger(__name__)

__all__ = [
    "DLIB_DETECTORS",
    "DLIB_FILES",
    "FaceSettings",
    "FacesAnalyzer",
    "build_engine",
    "create",
    "face_settings",
    "people_tags",
    "weights_dir",
]


def face_settings(settings: Any) -> FaceSettings:
    """`settings.faces` when the config has a [faces] table, else the defaults."""
    value = getattr(settings, "faces", None)
    if value is None:
        return FaceSettings()
    if isinstance(value, FaceSettings):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return FaceSettings.model_validate(value)


def uses_dlib_engine(cfg: FaceSettings) -> bool:
    if cfg.engine == "dlib":
        return True
    if cfg.engine == "deepface":
        return False
    return cfg.model == "Dlib" and cfg.detector in DLIB_DETECTORS


# --------------------------------------------------------------------------- analyzer


def normalized_box(face: Face, width: int, height: int) -> list[float]:
    """Pixel box -> [x, y, w, h] as fractions of the image, clipped to [0, 1]."""
    x0 = min(max(face.x / width, 0.0), 1.0)
    y0 = min(max(face.y / height, 0.0), 1.0)
    x1 = min(max((face.x + face.w) / width, 0.0), 1.0)
    y1 = min(max((face.y + face.h) / height, 0.0), 1.0)
    return [round(x0, 6), round(y0, 6), round(x1 - x0, 6), round(y1 - y0, 6)]


#: Up to this many faces a photo is a portrait (`People|Portrait`), from one more a group.
PORTRAIT_MAX_FACES = 2


def people_tags(count: int) -> list[dict[str, Any]]:
    """Hierarchical keywords for a photo with `count` faces: `People` and
    `People|Portrait` (1-2 faces) or `People|Group` (3 or more); none without faces.

    ImageNet has no "person" class, so without them a portrait had no tag at all
    and `search people` found nothing unless CLIP was on. The confidence is left
    empty: a detector's margin is no probability (the CLIP `tags` analyzer may add
    the same keywords with its own confidence)."""
    if count <= 0:
        return []
    kind = "Portrait" if count <= PORTRAIT_MAX_FACES else "Group"
    return [
        {"tag": "People", "confidence": None, "source": "faces"},
        {"tag": f"People|{kind}", "confidence": None, "source": "faces"},
    ]


class FacesAnalyzer(Analyzer):
    """Detect faces, drop small or doubtful ones, embed the rest."""

    name = "faces"
    # 2: results carry the People keywords ("tags"); photos analysed by 1 are analysed
    # again in the background (a face keeps its id and person: boxes are matched).
    # 3: the default detector is dlib+mtcnn; HOG's faces are unchanged, faces only MTCNN
    # finds (turned, small) are added when photos analysed by 2 are analysed again.
    version = "3"

    def __init__(self, engine: FaceEngine, cfg: FaceSettings) -> None:
        self._engine = engine
        self._cfg = cfg
        self.image_side = cfg.image_side
        self._lock = threading.Lock()  # dlib objects are not documented thread-safe
        self._faces = 0
        self._photos = 0
        self._seconds = 0.0

    def analyze_pixels(self, pixels: np.ndarray) -> dict[str, Any]:
        """Result for one upright RGB image; raises on a bad image."""
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
        height, width = pixels.shape[:2]
        with self._lock:
            found = self._engine.faces(pixels)
        kept = [
            f
            for f in found
            if min(f.w, f.h) >= self._cfg.min_face_px and f.score >= self._cfg.min_score
        ]
        kept.sort(key=lambda f: f.score, reverse=True)
        kept = kept[: self._cfg.max_faces]
        kept.sort(key=lambda f: (f.x, f.y))  # stable reading order: index i means the same face
        return {
            "tags": people_tags(len(kept)),
            "faces": [
                {
                    "box": normalized_box(f, width, height),
                    "score": round(f.score, 4),
                    "embedding": f.embedding,
                    "model": self._engine.model,
                    "detector": f.detector or self._engine.detector,
                }
                for f in kept
            ],
        }

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        out: list[dict[str, Any] | AnalyzerError] = []
        for item in items:
            start = time.perf_counter()
            try:
                result = self.analyze_pixels(item.image.pixels)
            except Exception as exc:  # one bad photo never fails the batch
                log.warning("faces failed on %s: %s", item.path, exc)
                out.append(AnalyzerError(f"faces: {type(exc).__name__}: {exc}"))
                continue
            self._seconds += time.perf_counter() - start
            self._photos += 1
            self._faces += len(result["faces"])
            out.append(result)
        return out

    def status(self) -> dict[str, Any]:
        loaded = getattr(self._engine, "loaded", None)
        return {
            **({} if loaded is None else {"loaded": loaded}),
            "model": self._engine.model,
            "detector": self._engine.detector,
            "engine": type(self._engine).__name__,
            "photos": self._photos,
            "faces": self._faces,
            "seconds_per_photo": round(self._seconds / self._photos, 3) if self._photos else None,
        }

    def close(self) -> None:
        engine, self._engine = self._engine, _Closed()
        unload = getattr(engine, "unload", None)
        if unload is not None:
            unload()


class _Closed:
    detector = model = "closed"

    def faces(self, pixels: np.ndarray) -> list[Face]:
        raise RuntimeError("faces analyzer is closed")


def build_engine(cfg: FaceSettings, state_dir: Path, session_factory: Any = None) -> FaceEngine:
    """The engine for `cfg`; the dlib weights are installed into the state dir first.

    `session_factory` runs the ONNX detector (MTCNN) and loads and unloads dlib's
    networks like the ONNX models; without one (tests, tools) a
    CPU-only factory with the daemon's defaults is made."""
    home = deepface_home(state_dir)
    if uses_dlib_engine(cfg):
        if cfg.model != "Dlib":
            raise ValueError(f"engine dlib only runs model Dlib, not {cfg.model!r}")
        weights = install_dlib_weights(state_dir)
        mtcnn = None
        if "mtcnn" in cfg.detector:
            if session_factory is None:
                from photovault.models.session import CPU_PROVIDER, SessionFactory

                session_factory = SessionFactory(providers=(CPU_PROVIDER,))
            mtcnn = MtcnnDetector(session_factory, packaged_mtcnn_models(), cfg.min_face_px)
        return DlibEngine(
            weights,
            cfg.detector,
            cfg.upsample,
            cfg.num_jitters,
            mtcnn,
            cfg.min_score,
            session_factory,
        )
    if importlib.util.find_spec("face_recognition_models") is not None:
        install_dlib_weights(state_dir)  # deepface's Dlib model and detector find them
    return DeepFaceEngine(home, cfg.model, cfg.detector)


def create(settings: Any, context: AnalyzerContext) -> FacesAnalyzer:
    """Registry factory. Loading is retried once (a half-copied weight file), then fails loudly."""
    cfg = face_settings(settings)
    try:
        engine = build_engine(cfg, context.state_dir, context.session_factory)
    except (ModuleNotFoundError, ValueError):
        raise
    except Exception as exc:
        log.warning("loading faces model failed (%s); reinstalling weights and retrying once", exc)
        for name in DLIB_FILES.values():
            (weights_dir(context.state_dir) / name).unlink(missing_ok=True)
        engine = build_engine(cfg, context.state_dir, context.session_factory)
    log.info(
        "faces: model %s, detector %s (%s)", engine.model, engine.detector, type(engine).__name__
    )
    return FacesAnalyzer(engine, cfg)
