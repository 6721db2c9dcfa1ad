"""The `metadata` analyzer: capture facts plus a perceptual hash, no model needed.

Capture time, GPS, camera and lens come from exiftool (read by the pipeline
in batch); this analyzer normalises them and adds a 64-bit difference hash
(dHash) of the decoded pixels, which `similar` uses to put near-duplicates
(resized or re-encoded copies) first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError


def dhash(pixels: np.ndarray) -> str:
    """64-bit dHash as 16 hex digits: row-wise brightness gradients of a 9x8 thumbnail."""
    from PIL import Image

    gray = Image.fromarray(pixels).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    a = np.asarray(gray, dtype=np.int16)
    bits = (a[:, 1:] > a[:, :-1]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


class MetadataAnalyzer(Analyzer):
    name = "metadata"
    version = "1"
    image_side = 224

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        out: list[dict[str, Any] | AnalyzerError] = []
        for item in items:
            m = item.metadata
            w, h = item.image.stored_size
            out.append(
                {
                    "taken_at": m.taken_at,
                    "gps": {"lat": m.gps_lat, "lon": m.gps_lon}
                    if m.gps_lat is not None and m.gps_lon is not None
                    else None,
                    "camera": m.camera,
                    "lens": m.lens,
                    "width": m.width or w,
                    "height": m.height or h,
                    "orientation": m.orientation or item.image.orientation,
                    "mime": m.mime,
                    "decoded_as": item.image.source,
                    "dhash": dhash(item.image.pixels),
                }
            )
        return out


def create(settings: Any, context: Any) -> MetadataAnalyzer:
    return MetadataAnalyzer()
