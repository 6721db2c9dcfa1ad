"""What the worker records of a file besides analyzer results: its metadata as
exiftool read it, and the analyzer signature of what worked.

Kept apart from the worker loop so the loop stays readable; pure functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from photovault.media.types import DecodedImage, MediaError, PhotoMetadata


def readable_metadata(
    meta_map: dict[Path, PhotoMetadata | MediaError], paths: list[Path]
) -> tuple[PhotoMetadata | None, str | None]:
    """The metadata of one content from the first of its files (byte-identical
    copies) that exiftool read, else None and why none could be read."""
    why = "not read"
    for path in paths:
        meta = meta_map.get(path)
        if isinstance(meta, PhotoMetadata):
            return meta, None
        if isinstance(meta, MediaError):
            why = meta.reason
    return None, why


def signature_without(signature: str, failed: set[str]) -> str:
    """'metadata:1,clip:2' without the analyzers named in `failed`."""
    if not failed:
        return signature
    return ",".join(p for p in signature.split(",") if p.partition(":")[0] not in failed)


def basic_facts(meta: PhotoMetadata | None, image: DecodedImage | None) -> dict[str, Any]:
    """Catalog columns straight from exiftool, for when the metadata analyzer is off."""
    m = meta or PhotoMetadata()
    w, h = image.stored_size if image else (None, None)
    gps = {"lat": m.gps_lat, "lon": m.gps_lon} if m.gps_lat is not None and m.gps_lon else None
    return {
        "taken_at": m.taken_at,
        "gps": gps,
        "camera": m.camera,
        "lens": m.lens,
        "width": m.width or w,
        "height": m.height or h,
        "orientation": m.orientation or (image.orientation if image else None),
        "mime": m.mime,
    }
