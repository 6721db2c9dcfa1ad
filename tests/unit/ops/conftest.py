"""Photos with location written by the real exiftool, and a read-back helper.

The read-back uses its own word list on purpose: the export's own matcher
must not be the only judge of whether it worked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="apt install libimage-exiftool-perl")

LOCATION_WORDS = re.compile(
    r"gps|city|country|location|province|state|latitude|longitude", re.IGNORECASE
)

JPEG_LOCATION = (
    "-GPSLatitude=48.8584",
    "-GPSLatitudeRef=N",
    "-GPSLongitude=2.2945",
    "-GPSLongitudeRef=E",
    "-GPSAltitude=35",
    "-XMP-exif:GPSLatitude=48.8584",
    "-XMP-exif:GPSLongitude=2.2945",
    "-XMP-photoshop:City=Paris",
    "-XMP-photoshop:State=Ile-de-France",
    "-XMP-photoshop:Country=France",
    "-IPTC:City=Paris",
    "-IPTC:Sub-location=Champ de Mars",
    "-IPTC:Province-State=IDF",
    "-IPTC:Country-PrimaryLocationName=France",
    "-IPTC:Country-PrimaryLocationCode=FRA",
    "-XMP-iptcCore:Location=Eiffel Tower",
    "-XMP-iptcCore:CountryCode=FR",
    "-XMP-iptcExt:LocationCreatedCity=Paris",
    "-XMP-iptcExt:LocationShownCountryName=France",
    "-XMP-iptcCore:CreatorCity=Lyon",
)
KEEP = ("-Make=Canon", "-Artist=Ada", "-XMP-dc:Subject=tower")


def exiftool_write(path: Path, *args: str) -> None:
    assert EXIFTOOL is not None
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *args, str(path)], check=True)


def read_tags(path: Path) -> dict[str, Any]:
    """Every tag of `path`, the way a recipient's exiftool would see it."""
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-n", "-ee", str(path)], check=True, capture_output=True
    ).stdout
    row: dict[str, Any] = json.loads(out)[0]
    return row


def location_keys(tags: dict[str, Any] | Path) -> list[str]:
    """The location-bearing tag names of a file (or of its `read_tags` row)."""
    row = read_tags(tags) if isinstance(tags, Path) else tags
    return [k for k in row if k != "SourceFile" and LOCATION_WORDS.search(k.split(":")[-1])]


def make_photo(path: Path, fmt: str = "JPEG", *tags: str) -> Path:
    """A small real image with those exiftool tag assignments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 32), (180, 40, 40)).save(path, fmt)
    if tags:
        exiftool_write(path, *tags)
    return path
