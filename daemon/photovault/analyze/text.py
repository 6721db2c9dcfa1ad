"""The `text` analyzer: read text lines offline (receipts, signs, screenshots).

PP-OCR networks (installed with `vaultctl models install text pp-ocrv6`, copied
from RapidOCR's wheel) run through the daemon's SessionFactory; the engine is in
`textocr.py`, pre/post-processing in `textdet.py`. Settings: `[text]`
(`config.TextSettings`).

Result, stored as JSON (read back through `photovault.results.TextResult`):

    {"model": "pp-ocrv6",
     "lines": [{"text", "box": [x, y, w, h], "score"}, ...],   # reading order
     "document": "receipt" | "screenshot" | "text" | None,
     "tags": [{"tag": "Documents|Receipt", "confidence", "source": "text"}]}

Boxes are fractions of the stored frame (the image as stored in the file, before
EXIF orientation), like MWG regions; the axis-aligned box around each line's quad.

What kind of document a photo is (stated rules, checked in that order; none of
them without at least 3 lines):

* **screenshot**: no camera in the metadata and a PNG/WebP file (or "screenshot"
  in its name), and at least 3 lines;
* **receipt**: at least 3 amounts like "12.50", and a total/payment word
  ("total", "card", "cash", "vat", "summe", ...) or a currency sign;
* **text**: the lines cover at least `document_share` of the image, or there are
  at least 12 of them.

A photo that is none of these (a sign, a T-shirt) keeps its lines but gets no
Documents keyword.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import numpy as np
from pydantic import BaseModel

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.textocr import OcrEngine, OcrLine, OcrSettings
from photovault.config import TextSettings
from photovault.models.store import InstalledModel, ModelError

log = logging.getLogger(__name__)

#: Lines a photo needs before it can be a document at all.
MIN_DOCUMENT_LINES = 3
#: This many lines make a photo "text" whatever share of it they cover.
MANY_LINES = 12
#: Amounts a receipt shows at least (items, total, payment).
MIN_AMOUNTS = 3
AMOUNT_RE = re.compile(r"(?<![\d.,])\d{1,6}[.,]\d{2}(?![\d.,])")
TOTAL_RE = re.compile(
    r"\b(sub ?total|total|totale|totaal|tax|vat|mwst|ust|tva|iva|cash|card|change|amount|"
    r"balance|summe|gesamt|betrag|bar|efectivo|montant|importe|paid|due)\b",
    re.IGNORECASE,
)
CURRENCY_RE = re.compile(r"[$€£¥]|\b(EUR|USD|GBP|CHF|RM|SEK|NOK|DKK)\b")
SCREEN_MIMES = ("image/png", "image/webp")


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


def document_kind(
    texts: list[str], share: float, item: AnalysisItem | None, min_share: float
) -> str | None:
    """ "screenshot", "receipt", "text" or None, by the rules in the module docstring."""
    if len(texts) < MIN_DOCUMENT_LINES:
        return None
    if item is not None:
        meta = item.metadata
        named = "screenshot" in item.path.name.lower()
        if not meta.camera and (named or (meta.mime or "").lower() in SCREEN_MIMES):
            return "screenshot"
    joined = "\n".join(texts)
    if len(AMOUNT_RE.findall(joined)) >= MIN_AMOUNTS and (
        TOTAL_RE.search(joined) or CURRENCY_RE.search(joined)
    ):
        return "receipt"
    if share >= min_share or len(texts) >= MANY_LINES:
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
    version = "1"

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
        height, width = pixels.shape[:2]
        if min(height, width) < 8:
            raise ValueError(f"image too small to read: {width}x{height}")
        lines = self._engine.read(pixels)
        kind = document_kind(
            [line.text for line in lines],
            text_share(lines, width, height),
            item,
            self._cfg.document_share,
        )
        orientation = item.image.orientation or 1
        return {
            "model": self.model_name,
            "lines": [
                {
                    "text": line.text,
                    "box": [round(v, 5) for v in stored_box(line.quad, width, height, orientation)],
                    "score": line.score,
                }
                for line in lines
            ],
            "document": kind,
            "tags": document_tags(kind, lines),
        }

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
        }

    def close(self) -> None:
        self._engine.unload()


def build_engine(model: InstalledModel, cfg: TextSettings, factory: Any) -> OcrEngine:
    """The OCR engine for an installed text model; ModelError when it cannot serve `cfg`."""
    manifest = model.manifest
    served = list(manifest.extra.get("languages") or [])
    missing = [code for code in cfg.languages if code not in served]
    if missing:
        raise ModelError(
            f"[text] languages: model {manifest.name} does not read {', '.join(missing)} "
            f"(it reads {', '.join(served) or 'nothing listed'}); "
            "install pp-ocrv6 (`vaultctl models install text pp-ocrv6`)"
        )
    charset_file = model.path / str(manifest.extra.get("charset", "charset.txt"))
    try:
        chars = charset_file.read_text(encoding="utf-8").split("\n")[:-1]
    except OSError as exc:
        raise ModelError(f"{charset_file}: unreadable charset: {exc}") from exc
    charset = ["<blank>", *chars, " "]
    if len(charset) != manifest.num_classes:
        raise ModelError(
            f"{charset_file}: {len(charset)} classes with blank and space, "
            f"the recognizer scores {manifest.num_classes}"
        )
    name = manifest.name

    def managed(role: str) -> Any:
        return factory.managed(model.file(role, "fp32"), name=f"{name}:{role}")

    settings = OcrSettings(
        gate_side=cfg.gate_side,
        max_side=cfg.image_side,
        box_thresh=cfg.box_threshold,
        gate_thresh=cfg.gate_threshold,
        min_score=cfg.min_score,
    )
    return OcrEngine(managed("det"), managed("cls"), managed("rec"), charset, settings)


def create(settings: Any, context: AnalyzerContext) -> TextAnalyzer:
    """Registry factory: the configured (or first installed) text model, fully verified
    (hashes, load, shapes) so a broken file disables the analyzer with its name."""
    cfg = text_settings(settings)
    name = cfg.model
    if name is None:
        installed = [m for m in context.model_store.list() if m.manifest.task == "text"]
        if not installed:
            raise ModelError(
                f"no text model installed in {context.model_store.root} "
                "(vaultctl models install text pp-ocrv6)"
            )
        name = installed[0].name
    model = context.model_store.get(str(name), kind="text")
    context.model_store.verify(model.name)
    engine = build_engine(model, cfg, context.session_factory)
    log.info("text: model %s, languages %s", model.name, ", ".join(cfg.languages))
    return TextAnalyzer(engine, model.name, cfg)
