"""Pre- and post-processing around the PP-OCR networks: pure numpy and OpenCV.

The `text` analyzer (analyze/text.py) runs three ONNX networks through our own
SessionFactory; this module turns pixels into their inputs and their outputs into
lines. It is a port of RapidOCR's (Apache-2.0, itself PaddleOCR's) `DetPreProcess`,
`DBPostProcess`, `get_rotate_crop_image`, the classifier and recognizer resizes and
`CTCLabelDecode`, with the same constants. We port instead of importing because
importing any part of `rapidocr_onnxruntime` runs its package `__init__`, which
builds its own onnxruntime sessions and wants opencv-python next to our headless
OpenCV, and `rapidocr` 3.x pulls omegaconf, colorlog and a downloader.

Conventions: images are BGR uint8 (the networks were trained on OpenCV's channel
order); a quad is a float32 (4, 2) array of (x, y) pixel corners in the order
top-left, top-right, bottom-right, bottom-left of the text as it reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

#: DB detector post-processing (RapidOCR's defaults): probability above `THRESH`
#: is text; a box is kept when its mean probability is at least the box threshold;
#: boxes grow by `UNCLIP_RATIO` (DB shrinks text regions during training).
THRESH = 0.3
UNCLIP_RATIO = 1.6
MAX_CANDIDATES = 1000
MIN_SIZE = 3
#: Detection size (RapidOCR's and PaddleOCR's default, limit_type "min", 736): the
#: short side is scaled to `DET_MIN_SIDE` (up or down), the long side capped at
#: `DET_MAX_SIDE` so a very long receipt stays affordable.
DET_MIN_SIDE = 736
DET_MAX_SIDE = 2560
#: Recognizer and classifier input heights and the classifier's width.
REC_HEIGHT = 48
REC_MIN_WIDTH = 96
CLS_SHAPE = (48, 192)


def check_dependencies() -> None:
    """Import what post-processing needs, so a missing package is found when the
    analyzer loads rather than on every photo; ImportError names it."""
    try:
        import pyclipper  # noqa: F401  (small C extension; only this analyzer needs it)
    except ImportError as exc:
        raise ImportError(f"pyclipper is not installed ({exc}); pip install pyclipper") from exc


#: Normalisation (mean, std per channel, of x / 255): the classifier's and the
#: recognizer's, and RapidOCR's for the detector; a model may declare another one for
#: its detector (PaddleOCR's tiny detector wants ImageNet's).
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
Norm = tuple[tuple[float, float, float], tuple[float, float, float]]


def _to_input(bgr: np.ndarray, ratio: float, norm: Norm = HALF) -> np.ndarray:
    """Scale by `ratio`, each side rounded to a multiple of 32, (x/255 - mean) / std,
    NCHW. `norm` applies to the channels in the image's (BGR) order, as PaddleOCR's
    NormalizeImage does after decoding to BGR (the networks were trained that way)."""
    h, w = bgr.shape[:2]
    rh = max(32, int(round(h * ratio / 32) * 32))
    rw = max(32, int(round(w * ratio / 32) * 32))
    inter = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(bgr, (rw, rh), interpolation=inter)
    mean = np.array(norm[0], dtype=np.float32) * 255.0
    scale = 1.0 / (np.array(norm[1], dtype=np.float32) * 255.0)
    x = (resized.astype(np.float32) - mean) * scale
    return x.transpose(2, 0, 1)[np.newaxis]


def det_input(
    bgr: np.ndarray, min_side: int = DET_MIN_SIDE, max_side: int = DET_MAX_SIDE, norm: Norm = HALF
) -> np.ndarray:
    """The detector's (1, 3, H, W) input: the short side scaled to `min_side` (enlarged
    or reduced, as RapidOCR's limit_type "min"), the long side to at most `max_side`."""
    h, w = bgr.shape[:2]
    ratio = min(min_side / min(h, w), max_side / max(h, w))
    return _to_input(bgr, ratio, norm)


def gate_input(bgr: np.ndarray, side: int, norm: Norm = HALF) -> np.ndarray:
    """The quick look's input: the image reduced to about `side` x `side` * 4/3 pixels in
    area (never enlarged). By area, not by the long side: a receipt 5x taller than wide
    keeps its print a few pixels high instead of shrinking to a 64 px wide strip."""
    h, w = bgr.shape[:2]
    ratio = min(1.0, math.sqrt(side * side * 4 / 3 / (h * w)))
    return _to_input(bgr, ratio, norm)


def text_pixels(prob: np.ndarray, region_thresh: float) -> int:
    """Pixels of a (1, 1, h, w) probability map above `THRESH` that lie in regions whose
    mean probability is at least `region_thresh` (and of 9 pixels or more): how much
    text the detector sees, whether or not its lines merge into one region."""
    pred = prob[0, 0]
    mask = (pred > THRESH).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return 0
    sums = np.bincount(labels.ravel(), weights=pred.ravel(), minlength=count)[1:]
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = (areas >= 9) & (sums >= region_thresh * areas)
    return int(areas[keep].sum())


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle of a contour as a quad (tl, tr, br, bl) and its short side."""
    rect = cv2.minAreaRect(contour)
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    quad = np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)
    return quad, float(min(rect[1]))


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside the quad (RapidOCR's "fast" score)."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = quad - np.array([x0, y0], dtype=np.float32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 2).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _unclip(quad: np.ndarray, ratio: float) -> np.ndarray:
    """Grow a quad by area * ratio / perimeter, as DB's training shrank it."""
    import pyclipper  # checked by check_dependencies() when the analyzer loads

    area = abs(cv2.contourArea(quad))
    length = cv2.arcLength(quad, True)
    if length <= 0:
        return quad.reshape(-1, 1, 2)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(quad.astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(area * ratio / length)
    if not grown:
        return quad.reshape(-1, 1, 2)
    return np.array(grown[0], dtype=np.float32).reshape(-1, 1, 2)


def boxes_from_map(
    prob: np.ndarray, width: int, height: int, box_thresh: float
) -> list[tuple[np.ndarray, float]]:
    """(quad, score) per text region of a (1, 1, h, w) DB probability map, in pixels
    of an image `width` x `height`."""
    pred = prob[0, 0]
    mask = cv2.dilate((pred > THRESH).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    mh, mw = pred.shape
    out = []
    for contour in contours[:MAX_CANDIDATES]:
        quad, side = _mini_box(contour)
        if side < MIN_SIZE:
            continue
        score = _box_score(pred, quad)
        if score < box_thresh:
            continue
        quad, side = _mini_box(_unclip(quad, UNCLIP_RATIO))
        if side < MIN_SIZE + 2:
            continue
        quad[:, 0] = np.clip(np.round(quad[:, 0] / mw * width), 0, width - 1)
        quad[:, 1] = np.clip(np.round(quad[:, 1] / mh * height), 0, height - 1)
        if np.linalg.norm(quad[0] - quad[1]) <= 3 or np.linalg.norm(quad[0] - quad[3]) <= 3:
            continue
        out.append((quad, score))
    return out


def crop_quad(bgr: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad's pixels warped to an upright rectangle; a crop much taller than wide
    (a vertical line) is turned 90° so it reads left to right."""
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        bgr, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if h / w >= 1.5:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def _resize_norm(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale to `height` keeping the aspect (at most `width`), normalise, pad right."""
    h, w = crop.shape[:2]
    resized_w = min(width, max(1, math.ceil(height * w / max(h, 1))))
    resized = cv2.resize(crop, (resized_w, height)).astype(np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = resized.transpose(2, 0, 1) * (2.0 / 255.0) - 1.0
    return out


def cls_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """The 0°/180° classifier's (N, 3, 48, 192) input."""
    return np.stack([_resize_norm(c, *CLS_SHAPE) for c in crops])


def rec_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """The recognizer's (N, 3, 48, W) input; W fits the widest crop of the batch."""
    ratio = max([REC_MIN_WIDTH / REC_HEIGHT] + [c.shape[1] / max(c.shape[0], 1) for c in crops])
    width = int(REC_HEIGHT * ratio)
    return np.stack([_resize_norm(c, REC_HEIGHT, width) for c in crops])


def ctc_decode(probs: np.ndarray, charset: Sequence[str]) -> list[tuple[str, float]]:
    """Greedy CTC decoding of (N, T, C) probabilities: (text, mean probability of its
    characters) per row. `charset[0]` is the blank."""
    out = []
    best = probs.argmax(axis=2)
    conf = probs.max(axis=2)
    for row, scores in zip(best, conf, strict=True):
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        text = "".join(charset[i] for i in row[keep])
        score = float(scores[keep].mean()) if keep.any() else 0.0
        out.append((text, score))
    return out


def aspect(quad: np.ndarray) -> float:
    """Long side / short side of a quad (a line of text: 2 and more)."""
    w = float(np.linalg.norm(quad[0] - quad[1]))
    h = float(np.linalg.norm(quad[0] - quad[3]))
    return max(w, h) / max(min(w, h), 1.0)


def is_tall(quad: np.ndarray) -> bool:
    """A box clearly taller than wide: a line written top to bottom, i.e. text turned 90°."""
    w = np.linalg.norm(quad[0] - quad[1])
    h = np.linalg.norm(quad[0] - quad[3])
    return bool(h > 1.5 * w)


def skew(quads: Sequence[np.ndarray]) -> float:
    """The page's tilt in radians: the median angle of the boxes' top edges (boxes
    wider than tall only; 0 when there are none)."""
    angles = []
    for q in quads:
        dx, dy = float(q[1, 0] - q[0, 0]), float(q[1, 1] - q[0, 1])
        if abs(dx) > abs(dy):
            angles.append(math.atan2(dy, dx))
    return float(np.median(angles)) if angles else 0.0


def reading_order(quads: Sequence[np.ndarray]) -> list[int]:
    """Indices of the quads top to bottom, and left to right within a row, in the
    frame where the page is level (a tilted photo's item and price share a row):
    boxes whose centres lie within half a line height of each other share a row."""
    if not quads:
        return []
    angle = skew(quads)
    cos, sin = math.cos(-angle), math.sin(-angle)
    centres = []
    for q in quads:
        x, y = float(q[:, 0].mean()), float(q[:, 1].mean())
        centres.append((x * cos - y * sin, x * sin + y * cos))
    heights = [float(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))) for q in quads]
    order = sorted(range(len(quads)), key=lambda i: centres[i][1])
    rows: list[list[int]] = []
    for i in order:
        if rows:
            last = rows[-1]
            row_y = sum(centres[j][1] for j in last) / len(last)
            row_h = max(heights[j] for j in last)
            if abs(centres[i][1] - row_y) <= 0.5 * min(row_h, heights[i]):
                last.append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: centres[j][0])]
