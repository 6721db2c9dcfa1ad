"""The OCR engine behind the `text` analyzer: gate, detect, orient, recognize.

Three ONNX networks (PP-OCR detection, 0°/180° line classifier, recognition) run
through ManagedModels from our SessionFactory, so providers, threads and idle
unloading follow `[models]`. Pre- and post-processing live in `textdet.py`.

Cost shape (bench/text.py): most photos hold no text, so the detector first runs on
the image reduced to about `gate_side` x 4/3 `gate_side` pixels in area (the gate:
~20 ms with pp-ocrv6-tiny's detector at 416, ~60 ms with pp-ocrv6's at 320); the
photo holds text when at least `GATE_MIN_SHARE` of that probability map is text
(pixels above the binarisation threshold in regions scoring `gate_thresh` or more,
which is at most the box threshold) and at least one region is shaped like a line
(`GATE_LINE_ASPECT`). Counting pixels rather than requiring a high-scoring box keeps
dense pages and small print, whose regions score lower; sizing by area keeps a tall
receipt's print a few pixels high. Only then does detection run with the short side
at `min_side` (736, as PaddleOCR), and recognition only on the regions found. A
model may bring a second, stronger recognizer (pp-ocrv6-tiny brings PP-OCRv6 small):
it reads again only the lines the first read with a confidence below `REREAD_BELOW`,
about one in ten.

Orientation: the networks read horizontal text. When most detected boxes are much
taller than wide (a page photographed at 90°), the image is turned 90° and
detected again; the 0°/180° classifier then votes line by line, and when most lines
read upside down the whole page is (this also covers 270° and 180° pages): every
line is flipped and reading order is taken in the flipped frame. The vote is per
page because the classifier sees a line squeezed into 192 px: on a page of long
lines of small print it calls a few of them upside down, which reads them as
garbage ("rer s n r un gur").
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
#: Share of the gate's probability map that must be text for the photo to be read:
#: 0.5%, a line of a dozen characters in a 4:3 photo. On the 50 real photos of
#: bench/text.py without text most score 0 and a few (latte art, a backdrop's
#: lettering) up to 20%; a 5-line invoice scores ~3%, a page 20-30%.
GATE_MIN_SHARE = 0.005
#: ... and one region at least this many times longer than high. The detector's
#: false alarms on those photos are single roundish blobs (aspect 1.3-1.7: latte
#: art, a patterned shirt); a line of three letters is already ~2.
GATE_LINE_ASPECT = 2.0
#: Lines recognized per batch: similar widths are batched (sorted), so little padding.
REC_BATCH = 8
#: With a second recognizer (pp-ocrv6-tiny's small one), lines the first reads with a
#: mean character confidence below this are read again by it, and its reading is kept.
#: On bench/text.py's photos 53 of 563 lines fall below 0.95 (the tiny recognizer's
#: "0live oil", "HDO" for a backdrop's "HBO"); they hold 36 of the 45 lines the two
#: recognizers read differently, and the small one is right in all but a few.
REREAD_BELOW = 0.95


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
    min_side: int = textdet.DET_MIN_SIDE
    max_side: int = textdet.DET_MAX_SIDE
    box_thresh: float = 0.5
    gate_thresh: float = 0.5
    min_score: float = 0.5
    det_norm: textdet.Norm = textdet.HALF  # the detector's input normalisation

    def __post_init__(self) -> None:
        if self.gate_thresh > self.box_thresh:
            raise ValueError(
                f"gate threshold {self.gate_thresh} above the box threshold {self.box_thresh}: "
                "the quick look would miss text the full pass reads"
            )


@dataclass(frozen=True)
class Gate:
    """What the quick look saw: the share of its map that is text, how many of its
    regions are shaped like lines, and whether they are mostly taller than wide (a
    page turned 90°)."""

    share: float
    lines: int
    tall: bool

    @property
    def has_text(self) -> bool:
        return self.share >= GATE_MIN_SHARE and self.lines > 0


class OcrEngine:
    """Reads text lines out of an upright RGB image."""

    def __init__(
        self,
        det: Runner,
        cls: Runner | None,
        rec: Runner,
        charset: Sequence[str],
        settings: OcrSettings,
        reread: tuple[Runner, Sequence[str]] | None = None,
    ) -> None:
        self.det, self.cls, self.rec = det, cls, rec
        self.charset = list(charset)
        self.settings = settings
        self.reread = None if reread is None else (reread[0], list(reread[1]))
        self.lines_read = 0
        self.lines_reread = 0

    def _detect(self, bgr: np.ndarray) -> list[tuple[np.ndarray, float]]:
        s = self.settings
        h, w = bgr.shape[:2]
        (prob,) = self.det.run({"x": textdet.det_input(bgr, s.min_side, s.max_side, s.det_norm)})
        return textdet.boxes_from_map(prob, w, h, s.box_thresh)

    def gate(self, rgb: np.ndarray) -> Gate:
        """The quick look at an upright RGB image (see the module docstring)."""
        s = self.settings
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        h, w = bgr.shape[:2]
        (prob,) = self.det.run({"x": textdet.gate_input(bgr, s.gate_side, s.det_norm)})
        pixels = textdet.text_pixels(prob, s.gate_thresh)
        if pixels == 0:
            return Gate(0.0, 0, False)
        boxes = textdet.boxes_from_map(prob, w, h, s.gate_thresh)
        lines = sum(textdet.aspect(q) >= GATE_LINE_ASPECT for q, _ in boxes)
        return Gate(pixels / prob[0, 0].size, lines, _mostly_tall(boxes))

    @property
    def loaded(self) -> bool:
        return any(getattr(m, "loaded", False) for m in self._models())

    def _models(self) -> list[Runner | None]:
        return [self.det, self.cls, self.rec] + ([self.reread[0]] if self.reread else [])

    def unload(self) -> None:
        for model in self._models():
            unload = getattr(model, "unload", None)
            if unload is not None:
                unload()

    def read(self, rgb: np.ndarray, gate: bool = True, seen: Gate | None = None) -> list[OcrLine]:
        """Lines in reading order; [] when the gate finds no text. `seen`: the gate's
        verdict when the caller already ran it (on this image or a smaller copy)."""
        s = self.settings
        if seen is None:
            seen = self.gate(rgb)
        if gate and not seen.has_text:
            return []
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        height, width = bgr.shape[:2]
        turns, work = 0, bgr
        if seen.tall:
            turns, work = 1, np.ascontiguousarray(np.rot90(bgr, -1))  # 90° clockwise
        found = self._detect(work)
        if _mostly_tall(found):  # the gate guessed wrong (or merged the lines): turn again
            turns = 1 - turns
            work = np.ascontiguousarray(np.rot90(bgr, -1)) if turns else bgr
            turned = self._detect(work)
            if _mostly_tall(turned):  # tall either way: read it as it stands
                found = turned if seen.tall else found
                turns, work = 0, bgr
            else:
                found = turned
        if not found:
            return []
        quads = [q for q, _ in found]
        crops = [textdet.crop_quad(work, q) for q in quads]
        votes = self._classify(crops)
        upside_down = sum(votes) * 2 > len(votes)
        flipped = [upside_down] * len(crops)
        crops = [
            np.ascontiguousarray(c[::-1, ::-1]) if f else c
            for c, f in zip(crops, flipped, strict=True)
        ]
        texts = self._recognize(crops)
        kept = [i for i, (text, score) in enumerate(texts) if score >= s.min_score and text.strip()]
        if not kept:
            return []
        wh, ww = work.shape[:2]
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
        """(text, confidence) per crop; with a second recognizer, the lines the first
        is unsure of (`REREAD_BELOW`) are read again and its reading kept."""
        out = _read_lines(self.rec, self.charset, crops)
        self.lines_read += len(crops)
        if self.reread is not None:
            unsure = [i for i, (_, score) in enumerate(out) if score < REREAD_BELOW]
            if unsure:
                again = _read_lines(*self.reread, [crops[i] for i in unsure])
                for i, decoded in zip(unsure, again, strict=True):
                    out[i] = decoded
                self.lines_reread += len(unsure)
        return out


def _read_lines(
    rec: Runner, charset: Sequence[str], crops: list[np.ndarray]
) -> list[tuple[str, float]]:
    """CTC readings of the crops, batched by similar width (sorted, little padding)."""
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
    out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
    for start in range(0, len(order), REC_BATCH):
        chunk = order[start : start + REC_BATCH]
        (probs,) = rec.run({"x": textdet.rec_batch([crops[i] for i in chunk])})
        for i, decoded in zip(chunk, textdet.ctc_decode(probs, charset), strict=True):
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
