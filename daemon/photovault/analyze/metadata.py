"""The `metadata` analyzer: capture facts plus a perceptual hash, no model needed.

Capture time, GPS, camera and lens come from exiftool (read by the pipeline
in batch); this analyzer normalises them and adds a 64-bit difference hash
(dHash) of the decoded pixels, which `similar` uses to put near-duplicates
(resized or re-encoded copies) first.

Since version 2 it also names the place (country, region, town; offline, see
`photovault.geo.places`) and gives the local wall-clock capture time with where
its offset came from (`photovault.geo.timezone`). The place data is loaded once
per process, on the first photo with GPS. If it cannot be loaded, or a photo's
place or zone lookup fails, that photo alone gets an `AnalyzerError`: its
metadata result is not recorded, so it is analyzed again (on a copy or the next
start) once the data is fixed, and the other photos of the batch go on. A failed
load is tried again after `PLACE_RETRY_SECONDS` (one warning each time); until
then photos with GPS fail at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.geo.places import Geocoder, default_geocoder
from photovault.geo.timezone import local_time
from photovault.results import Place

log = logging.getLogger(__name__)

#: After the place data failed to load, how long photos with GPS fail at once
#: before loading is tried again.
PLACE_RETRY_SECONDS = 300.0


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

    def __init__(
        self,
        geocoder: Geocoder | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._geocoder = geocoder or default_geocoder()
        self._geocoder_error: str | None = None
        self._clock = clock
        self._retry_at = 0.0

    def place(self, lat: float | None, lon: float | None) -> Place | None:
        """The place at a position; None without GPS or at sea. Raises
        `AnalyzerError` while the place data cannot be loaded."""
        if lat is None or lon is None:
            return None
        if not self._geocoder.loaded:
            if self._geocoder_error is not None and self._clock() < self._retry_at:
                raise AnalyzerError(f"place data unavailable: {self._geocoder_error}")
            try:
                self._geocoder.load()
            except Exception as exc:  # data missing or unreadable: retried later
                self._geocoder_error = f"{type(exc).__name__}: {exc}"
                self._retry_at = self._clock() + PLACE_RETRY_SECONDS
                log.warning(
                    "cannot load place data, photos with GPS are retried later: %s",
                    self._geocoder_error,
                )
                raise AnalyzerError(f"place data unavailable: {self._geocoder_error}") from exc
            self._geocoder_error = None
        return self._geocoder.reverse(lat, lon)

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
            try:
                out.append(self._analyze_one(item))
            except AnalyzerError as exc:
                out.append(exc)
            except Exception as exc:  # one photo's lookup failing fails that photo only
                log.warning("metadata failed on %s: %s: %s", item.path, type(exc).__name__, exc)
                out.append(AnalyzerError(f"{type(exc).__name__}: {exc}"))
        return out

    def _analyze_one(self, item: AnalysisItem) -> dict[str, Any]:
        m = item.metadata
        w, h = item.image.stored_size
        place = self.place(m.gps_lat, m.gps_lon)
        # A "Z" says the instant is UTC (the wall clock comes from the position);
        # any other offset, "+00:00" included, is the local one the file recorded.
        offset_known = bool(m.taken_at) and not str(m.taken_at).endswith(("Z", "z"))
        taken_local, zone = local_time(m.taken_at, offset_known, m.gps_lat, m.gps_lon)
        return {
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


def create(settings: Any, context: Any) -> MetadataAnalyzer:
    return MetadataAnalyzer()
