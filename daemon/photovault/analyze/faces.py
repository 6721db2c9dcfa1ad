"""The `faces` analyzer: find faces, keep their boxes and a recognition embedding.

Two engines sit behind one config (`[faces]`, see `FaceSettings`):

* **dlib** (the default, fully offline). Recognition model `Dlib`
  (dlib's ResNet, 128-d, 99.38% on LFW) whose weights come from the CC0
  `face-recognition-models` pip package; nothing is downloaded. We call dlib
  directly instead of through deepface because deepface's Dlib path feeds
  the network an eye-aligned crop resized to 150x150, while the network was
  trained on dlib's own 5-landmark chips (`get_face_chip`, 25% padding):
  the direct path is the one the published accuracy refers to, and it skips
  deepface's extra detector pass. Detectors: `dlib` (HOG, ships with dlib),
  `dlib_cnn` (MMOD CNN, ships in face-recognition-models; finds turned
  faces HOG misses, ~20x slower on a CPU) and `opencv` (Haar cascade, ships
  in opencv 4.x wheels; not in 5.x).
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
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext

log = logging.getLogger(__name__)

#: Files the offline default needs, all in the face-recognition-models package.
DLIB_FILES = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}
DLIB_DETECTORS = ("dlib", "dlib_cnn", "opencv")


class FaceSettings(BaseModel):
    """`[faces]` in vaultd.toml. Defaults are the offline path measured in bench/faces.py."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "Dlib",
        description="recognition model: Dlib (offline) or a deepface model such as "
        "ArcFace, Facenet512, SFace (downloaded on first use)",
    )
    detector: str = Field(
        "dlib",
        description="face detector: dlib (HOG), dlib_cnn, opencv (all offline) or a deepface "
        "backend such as retinaface, yunet, mtcnn (downloaded on first use)",
    )
    engine: Literal["auto", "dlib", "deepface"] = Field(
        "auto",
        description="auto = call dlib directly for model Dlib with an offline detector, "
        "deepface otherwise",
    )
    image_side: int = Field(
        1024, ge=256, le=4096, description="long side (px) of the image faces are searched in"
    )
    upsample: int = Field(
        1,
        ge=0,
        le=2,
        description="dlib detectors: upsample the image this many times; 1 finds faces down "
        "to ~40 px at 3x the cost of 0 (~80 px)",
    )
    min_face_px: int = Field(
        40, ge=1, description="skip faces whose box is narrower than this in the working image"
    )
    min_score: float = Field(
        0.3,
        description="skip faces the detector scores below this (HOG: SVM margin, ~0..3; "
        "dlib_cnn: ~0..1.5; opencv: cascade level weight; deepface: confidence 0..1)",
    )
    max_faces: int = Field(
        500, ge=1, description="keep at most this many faces per photo (group photos: 50+)"
    )
    num_jitters: int = Field(
        1, ge=1, le=100, description="Dlib: average the embedding over this many jittered chips"
    )
    cluster_distance: float = Field(
        0.5,
        gt=0,
        description="two faces are neighbours when their embedding distance is at most this "
        "(Dlib: euclidean; deepface models: cosine)",
    )
    join_distance: float = Field(
        0.5,
        gt=0,
        description="a new face joins the nearest named person within this distance",
    )
    min_cluster_faces: int = Field(
        3, ge=2, description="faces a cluster needs before it becomes a person"
    )


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


# --------------------------------------------------------------------------- weights


def deepface_home(state_dir: Path) -> Path:
    return Path(state_dir) / "deepface"


def weights_dir(state_dir: Path) -> Path:
    return deepface_home(state_dir) / ".deepface" / "weights"


def packaged_dlib_models() -> Path:
    """Folder of face-recognition-models' .dat files, found without importing it.

    Importing the package runs `pkg_resources`, which setuptools 81+ no longer
    ships; its files sit next to its __init__.py either way.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "face_recognition_models is not installed (pip install face-recognition-models)",
            name="face_recognition_models",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def install_dlib_weights(state_dir: Path, source: Path | None = None) -> Path:
    """Copy the dlib model files into the deepface weights folder; return that folder.

    Copied (not linked) so the state dir keeps working when pip removes or
    upgrades the package; each copy goes to a temp name and is renamed into
    place so a crash never leaves a truncated model that loads as garbage.
    """
    src = source or packaged_dlib_models()
    dest = weights_dir(state_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name in DLIB_FILES.values():
        target = dest / name
        origin = src / name
        if target.is_file() and target.stat().st_size == origin.stat().st_size:
            continue
        tmp = target.with_name(f".{name}.tmp")
        try:
            shutil.copyfile(origin, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        log.info("installed %s into %s", name, dest)
    return dest


# --------------------------------------------------------------------------- engines


@dataclass
class Face:
    """One detected face in working-image pixels."""

    x: int
    y: int
    w: int
    h: int
    score: float
    embedding: list[float]


class FaceEngine(Protocol):
    detector: str
    model: str

    def faces(self, pixels: np.ndarray) -> list[Face]: ...


class DlibEngine:
    """dlib's detector + 5-point landmarks + ResNet descriptor, as dlib's authors use it."""

    model = "Dlib"

    def __init__(self, weights: Path, detector: str, upsample: int, num_jitters: int) -> None:
        import dlib  # heavy: only when the analyzer is created

        if detector not in DLIB_DETECTORS:
            raise ValueError(f"detector {detector!r} is not one of {', '.join(DLIB_DETECTORS)}")
        self.detector = detector
        self._dlib = dlib
        self._upsample = upsample
        self._jitters = num_jitters
        self._shape = dlib.shape_predictor(str(weights / DLIB_FILES["landmarks"]))
        self._net = dlib.face_recognition_model_v1(str(weights / DLIB_FILES["recognition"]))
        if detector == "dlib":
            self._hog = dlib.get_frontal_face_detector()
        elif detector == "dlib_cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(weights / DLIB_FILES["cnn_detector"]))
        else:
            import cv2

            path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
            if not path.is_file():  # opencv 5.x wheels dropped the cascades
                raise FileNotFoundError(f"{path} missing; install opencv-*-headless<5")
            self._haar = cv2.CascadeClassifier(str(path))
            self._cv2 = cv2

    def _detect(self, pixels: np.ndarray) -> list[tuple[Any, float]]:
        dlib = self._dlib
        if self.detector == "dlib":
            rects, scores, _ = self._hog.run(pixels, self._upsample, 0.0)
            return list(zip(rects, scores, strict=True))
        if self.detector == "dlib_cnn":
            return [(d.rect, float(d.confidence)) for d in self._cnn(pixels, self._upsample)]
        gray = self._cv2.cvtColor(pixels, self._cv2.COLOR_RGB2GRAY)
        boxes, _, levels = self._haar.detectMultiScale3(
            gray, 1.1, 5, minSize=(24, 24), outputRejectLevels=True
        )
        return [
            (dlib.rectangle(int(x), int(y), int(x + w), int(y + h)), float(s))
            for (x, y, w, h), s in zip(boxes, levels, strict=False)
        ]

    def faces(self, pixels: np.ndarray) -> list[Face]:
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        out = []
        for rect, score in self._detect(pixels):
            shape = self._shape(pixels, rect)
            vector = self._net.compute_face_descriptor(pixels, shape, self._jitters)
            left, top = max(rect.left(), 0), max(rect.top(), 0)
            right, bottom = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
            if right <= left or bottom <= top:
                continue
            out.append(
                Face(
                    left, top, right - left, bottom - top, float(score), [float(v) for v in vector]
                )
            )
        return out


class DeepFaceEngine:
    """Any deepface model and detector; weights are deepface's business (downloads)."""

    def __init__(self, home: Path, model: str, detector: str) -> None:
        os.environ["DEEPFACE_HOME"] = str(home)  # process-wide: deepface reads it per call
        os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "onnx")  # no tensorflow needed
        from deepface import DeepFace

        self._deepface = DeepFace
        self.model = model
        self.detector = detector
        # Build (and, with network, download) both now so a missing model fails
        # at start-up with its name, not on the first photo.
        DeepFace.build_model(model)
        DeepFace.build_model(detector, task="face_detector")

    def faces(self, pixels: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(pixels[:, :, ::-1])
        height, width = pixels.shape[:2]
        found = self._deepface.represent(
            img_path=bgr,
            model_name=self.model,
            detector_backend=self.detector,
            enforce_detection=False,
            align=True,
        )
        out = []
        for entry in found:
            area = entry["facial_area"]
            x, y, w, h = (int(area[k]) for k in ("x", "y", "w", "h"))
            confidence = float(entry.get("face_confidence") or 0.0)
            # With enforce_detection=False deepface returns the whole image as one
            # "face" of confidence 0 when it finds none.
            if confidence <= 0.0 and w >= width - 1 and h >= height - 1:
                continue
            out.append(Face(x, y, w, h, confidence, [float(v) for v in entry["embedding"]]))
        return out


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
    version = "2"

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
                    "detector": self._engine.detector,
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
        return {
            "model": self._engine.model,
            "detector": self._engine.detector,
            "engine": type(self._engine).__name__,
            "photos": self._photos,
            "faces": self._faces,
            "seconds_per_photo": round(self._seconds / self._photos, 3) if self._photos else None,
        }

    def close(self) -> None:
        self._engine = _Closed()


class _Closed:
    detector = model = "closed"

    def faces(self, pixels: np.ndarray) -> list[Face]:
        raise RuntimeError("faces analyzer is closed")


def build_engine(cfg: FaceSettings, state_dir: Path) -> FaceEngine:
    """The engine for `cfg`; the dlib weights are installed into the state dir first."""
    home = deepface_home(state_dir)
    if uses_dlib_engine(cfg):
        if cfg.model != "Dlib":
            raise ValueError(f"engine dlib only runs model Dlib, not {cfg.model!r}")
        weights = install_dlib_weights(state_dir)
        return DlibEngine(weights, cfg.detector, cfg.upsample, cfg.num_jitters)
    if importlib.util.find_spec("face_recognition_models") is not None:
        install_dlib_weights(state_dir)  # deepface's Dlib model and detector find them
    return DeepFaceEngine(home, cfg.model, cfg.detector)


def create(settings: Any, context: AnalyzerContext) -> FacesAnalyzer:
    """Registry factory. Loading is retried once (a half-copied weight file), then fails loudly."""
    cfg = face_settings(settings)
    try:
        engine = build_engine(cfg, context.state_dir)
    except (ModuleNotFoundError, ValueError):
        raise
    except Exception as exc:
        log.warning("loading faces model failed (%s); reinstalling weights and retrying once", exc)
        for name in DLIB_FILES.values():
            (weights_dir(context.state_dir) / name).unlink(missing_ok=True)
        engine = build_engine(cfg, context.state_dir)
    log.info(
        "faces: model %s, detector %s (%s)", engine.model, engine.detector, type(engine).__name__
    )
    return FacesAnalyzer(engine, cfg)
