"""The `metadata` analyzer: capture facts plus a perceptual hash, no model needed.

Capture time, GPS, camera and lens come from exiftool (read by the pipeline
in batch); this analyzer normalises them and adds a 64-bit difference hash
(dHash) of the decoded pixels, which `similar` uses to put near-duplicates
(resized or re-encoded copies) first.

Since version 2 it also names the place (country, region, town; offline, see
`photovault.geo.places`) and gives the local wall-clock capture time with where
its offset came from (`photovault.geo.timezone`). The place data is loaded once
per process, on the first photo with GPS; if it is missing the photo still gets
its result, without a place (one warning in the log).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.geo.places import Geocoder, default_geocoder
from photovault.geo.timezone import local_time
from photovault.results import Place

log = logging.getLogger(__name__)


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
    version = "2"
    image_side = 224

    def __init__(self, geocoder: Geocoder | None = None) -> None:
        self._geocoder = geocoder or default_geocoder()
        self._geocoder_error: str | None = None

    def place(self, lat: float | None, lon: float | None) -> Place | None:
        """The place at a position; None without GPS, at sea, or without place data."""
        if lat is None or lon is None or self._geocoder_error is not None:
            return None
        try:
            return self._geocoder.reverse(lat, lon)
        except Exception as exc:  # data missing or unreadable: no places, photos go on
            self._geocoder_error = f"{type(exc).__name__}: {exc}"
            log.warning("places off: cannot load place data: %s", self._geocoder_error)
            return None

    def status(self) -> dict[str, Any]:
        return {
            "places": {
                "loaded": self._geocoder.loaded,
                "load_seconds": round(self._geocoder.load_seconds, 3)
                if self._geocoder.load_seconds is not None
                else None,
                "error": self._geocoder_error,
            }
        }

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        out: list[dict[str, Any] | AnalyzerError] = []
        for item in items:
            m = item.metadata
            w, h = item.image.stored_size
            place = self.place(m.gps_lat, m.gps_lon)
            offset_known = bool(m.taken_at) and not str(m.taken_at).endswith(("Z", "z"))
            taken_local, zone = local_time(m.taken_at, offset_known, m.gps_lat, m.gps_lon)
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
                    "place": place.to_dict() if place is not None else None,
                    "local_time": zone.to_dict() if zone is not None else None,
                    "taken_local": taken_local,
                }
            )
        return out


def create(settings: Any, context: Any) -> MetadataAnalyzer:
    return MetadataAnalyzer()
