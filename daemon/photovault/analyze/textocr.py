"""The OCR engine behind the `text` analyzer: gate, detect, orient, recognize.

Three ONNX networks (PP-OCR detection, 0°/180° line classifier, recognition) run
through ManagedModels from our SessionFactory, so providers, threads and idle
unloading follow `[models]`. Pre- and post-processing live in `textdet.py`.

Cost shape (bench/text.py): most photos hold no text, so the detector first runs
on the image scaled to `gate_side` (~320 px, a few ms); without a text region
there the photo is done. Only then does detection run at `max_side`, and
recognition only on the regions found.

Orientation: the networks read horizontal text. When most detected boxes are much
taller than wide (a page photographed at 90°), the image is turned 90° and
detected again; the classifier then flips lines that read upside down (this also
covers 270° and 180° pages). When most lines were flipped, the page as a whole is
upside down and reading order is taken in the flipped frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from photovault.analyze import textdet

log = logging.getLogger(__name__)

#: The classifier must be this sure before a line is turned 180° (RapidOCR's value).
CLS_THRESH = 0.9
#: Lines recognized per batch: similar widths are batched (sorted), so little padding.
REC_BATCH = 8


class Runner(Protocol):
    """What the engine needs of a model: ManagedModel.run."""

    def run(self, feeds: Any, output_names: Any = None) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class OcrLine:
    """One recognized line; `quad` in pixels of the upright image it was read from."""

    text: str
    quad: np.ndarray
    score: float


@dataclass(frozen=True)
class OcrSettings:
    gate_side: int = 320
    max_side: int = 1024
    box_thresh: float = 0.5
    gate_thresh: float = 0.65
    min_score: float = 0.5


class OcrEngine:
    """Reads text lines out of an upright RGB image."""

    def __init__(
        self,
        det: Runner,
        cls: Runner | None,
        rec: Runner,
        charset: Sequence[str],
        settings: OcrSettings,
    ) -> None:
        self.det, self.cls, self.rec = det, cls, rec
        self.charset = list(charset)
        self.settings = settings

    def _detect(self, bgr: np.ndarray, side: int, thresh: float) -> list[tuple[np.ndarray, float]]:
        h, w = bgr.shape[:2]
        (prob,) = self.det.run({"x": textdet.det_input(bgr, side)})
        return textdet.boxes_from_map(prob, w, h, thresh)

    @property
    def loaded(self) -> bool:
        return any(getattr(m, "loaded", False) for m in (self.det, self.cls, self.rec))

    def unload(self) -> None:
        for model in (self.det, self.cls, self.rec):
            unload = getattr(model, "unload", None)
            if unload is not None:
                unload()

    def read(self, rgb: np.ndarray, gate: bool = True) -> list[OcrLine]:
        """Lines in reading order; [] when the gate finds no text."""
        s = self.settings
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        gated = self._detect(bgr, s.gate_side, s.gate_thresh)
        if gate and not gated:
            return []
        height, width = bgr.shape[:2]
        turns, work = 0, bgr
        if _mostly_tall(gated):
            turns, work = 1, np.ascontiguousarray(np.rot90(bgr, -1))  # 90° clockwise
        found = self._detect(work, s.max_side, s.box_thresh)
        if turns and _mostly_tall(found):  # the gate was wrong: read it as it stands
            turns, work = 0, bgr
            found = self._detect(work, s.max_side, s.box_thresh)
        if not found:
            return []
        quads = [q for q, _ in found]
        crops = [textdet.crop_quad(work, q) for q in quads]
        flipped = self._classify(crops)
        crops = [
            np.ascontiguousarray(c[::-1, ::-1]) if f else c
            for c, f in zip(crops, flipped, strict=True)
        ]
        texts = self._recognize(crops)
        kept = [i for i, (text, score) in enumerate(texts) if score >= s.min_score and text.strip()]
        if not kept:
            return []
        wh, ww = work.shape[:2]
        upside_down = sum(flipped[i] for i in kept) * 2 > len(kept)
        order_quads = [
            (np.array([ww, wh], dtype=np.float32) - quads[i][[2, 3, 0, 1]])
            if upside_down
            else quads[i]
            for i in kept
        ]
        out = []
        for j in textdet.reading_order(order_quads):
            i = kept[j]
            quad = _unturn(quads[i], turns, width, height)
            text = " ".join(texts[i][0].split())  # CTC leaves runs of spaces in gaps
            out.append(OcrLine(text, quad, round(texts[i][1], 4)))
        return out

    def _classify(self, crops: list[np.ndarray]) -> list[bool]:
        """True per crop the classifier is sure reads upside down."""
        if self.cls is None or not crops:
            return [False] * len(crops)
        out: list[bool] = []
        for start in range(0, len(crops), REC_BATCH * 4):
            (probs,) = self.cls.run({"x": textdet.cls_batch(crops[start : start + REC_BATCH * 4])})
            out.extend(bool(p[1] > p[0] and p[1] >= CLS_THRESH) for p in probs)
        return out

    def _recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        order = sorted(
            range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1)
        )
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), REC_BATCH):
            chunk = order[start : start + REC_BATCH]
            (probs,) = self.rec.run({"x": textdet.rec_batch([crops[i] for i in chunk])})
            for i, decoded in zip(chunk, textdet.ctc_decode(probs, self.charset), strict=True):
                out[i] = decoded
        return out


def _mostly_tall(found: list[tuple[np.ndarray, float]]) -> bool:
    """More than half of the boxes are taller than wide (and there are a few)."""
    if len(found) < 2:
        return bool(found) and textdet.is_tall(found[0][0])
    return sum(textdet.is_tall(q) for q, _ in found) * 2 > len(found)


def _unturn(quad: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """A quad found in the image turned 90° clockwise, in the upright image's pixels."""
    if turns == 0:
        return quad
    # Turned image: (x', y') = (height - y, x), so x = y' and y = height - x'.
    out = np.empty_like(quad)
    out[:, 0] = quad[:, 1]
    out[:, 1] = height - quad[:, 0]
    return out
