"""Helpers for the sidecar tests: fixture files, photos, exiftool/exiv2 readings.

exiv2 is run as a program (it has no server mode); exiftool readings go through
the module's `SidecarWriter`, so one exiftool process serves a whole test module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from photovault.sidecar.model import FaceRegion, Keyword, SidecarContent
from photovault.sidecar.writer import SidecarWriter

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xmp"
REAL_WORLD = [
    "digikam-full-portrait.xmp",
    "darktable-bibble-_27A1417.CR2.xmp",
    "lightroom61-IMG_5910.jpg.xmp",
    "microsoft-mp-regions.xmp",
]
OWN_CASES = ["exempi-traps.xmp", "pixel-regions.xmp"]

needs_tools = pytest.mark.skipif(
    not (shutil.which("exiftool") and shutil.which("exiv2")),
    reason="exiftool and exiv2 are needed (apt-get install libimage-exiftool-perl exiv2)",
)


def make_photo(
    folder: Path,
    name: str = "IMG_1.jpg",
    size: tuple[int, int] = (64, 48),
    orientation: int = 1,
    mode: int = 0o640,
) -> Path:
    """A small JPEG (stored size `size`) with the given EXIF orientation."""
    photo = folder / name
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", size, (90, 90, 90)).save(photo, exif=exif.tobytes())
    photo.chmod(mode)
    return photo


def copy_fixture(name: str, folder: Path, as_name: str | None = None) -> Path:
    target = folder / (as_name or name)
    target.write_bytes((FIXTURES / name).read_bytes())
    return target


def content(
    *,
    keywords=(("Animals", "Dog"), ("Places", "Strand & Meer")),
    faces=(
        ((0.1, 0.2, 0.2, 0.3), "Zoë Ångström", "face-1"),
        ((0.6, 0.2, 0.1, 0.1), None, "face-2"),
    ),
    analyzed_at="2024-05-01T10:00:00+00:00",
) -> SidecarContent:
    return SidecarContent(
        keywords=tuple(Keyword(tuple(p), 0.9, "tags") for p in keywords),
        faces=tuple(FaceRegion(box, name, fid, 0.98, "yunet-2023") for box, name, fid in faces),
        analyzed_at=analyzed_at,
        model_versions={"tags": "efficientnet-lite0", "faces": "yunet-2023"},
    )


def exiftool_json(writer: SidecarWriter, path: Path) -> dict:
    return writer.read_json(path)[0]


def exiv2_keys(path: Path) -> dict[str, tuple[str, str]]:
    """{key: (type, value)} as `exiv2 -PX` prints them."""
    out = subprocess.run(
        ["exiv2", "-PX", str(path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
    ).stdout
    data = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0].startswith("Xmp."):
            data[parts[0]] = (parts[1], parts[3] if len(parts) > 3 else "")
    return data


def as_list(value) -> list:
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def lost(before, after) -> str | None:
    """None when `after` still holds everything of `before` (lists may grow)."""
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return "no longer a struct"
        for key, value in before.items():
            if key not in after:
                return f"{key} gone"
            why = lost(value, after[key])
            if why:
                return f"{key}/{why}"
        return None
    if isinstance(before, list) or isinstance(after, list):
        pool = list(as_list(after))
        for item in as_list(before):
            hit = next((i for i, a in enumerate(pool) if lost(item, a) is None), None)
            if hit is None:
                return f"item {json.dumps(item, ensure_ascii=False)[:60]} lost"
            pool.pop(hit)
        return None
    return None if before == after else f"{before!r} -> {after!r}"
