"""The `metadata` analyzer names the place and the local time of a real photo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers.photos import write_jpeg
from photovault.analyze.base import AnalysisItem
from photovault.analyze.metadata import MetadataAnalyzer
from photovault.geo.places import Geocoder
from photovault.media.decode import decode_image
from photovault.media.metadata import MetadataReader
from photovault.media.types import PhotoMetadata
from photovault.results import LocalTime, MetadataResult, Place

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="apt install libimage-exiftool-perl")


def photo(path: Path, *tags: str) -> Path:
    write_jpeg(path, seed=7)
    assert EXIFTOOL is not None
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *tags, str(path)], check=True)
    return path


def analyze(analyzer: MetadataAnalyzer, path: Path) -> dict[str, Any]:
    with MetadataReader() as reader:
        meta = reader.read([path])[path]
    assert isinstance(meta, PhotoMetadata)
    item = AnalysisItem(1, path, "0" * 64, decode_image(path, 224), meta)
    (result,) = analyzer.analyze([item])
    assert isinstance(result, dict)
    return result


@needs_exiftool
def test_a_photo_taken_in_kehl_at_christmas_gets_its_place_and_local_day(tmp_path: Path) -> None:
    path = photo(
        tmp_path / "kehl.jpg",
        "-DateTimeOriginal=2023:12:24 23:30:00",
        "-GPSLatitude=48.5726",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=7.8155",
        "-GPSLongitudeRef=E",
    )
    analyzer = MetadataAnalyzer()
    result = analyze(analyzer, path)
    assert result["place"] == {
        "country_code": "DE",
        "country": "Germany",
        "region": "Baden-Wurttemberg",
        "city": "Kehl",
    }
    assert result["taken_local"] == "2023-12-24T23:30:00"
    assert result["local_time"] == {
        "offset": "+01:00",
        "zone": "Europe/Berlin",
        "source": "position",
    }
    stored = MetadataResult.from_stored(result)
    assert stored.place == Place("DE", "Germany", "Baden-Wurttemberg", "Kehl")
    assert stored.place.label() == "Kehl, Germany"
    assert stored.local_time == LocalTime("+01:00", "Europe/Berlin", "position")
    assert analyzer.version == "2"
    assert analyzer.status()["places"]["loaded"] is True


@needs_exiftool
def test_a_recorded_offset_wins_and_a_photo_without_gps_has_no_place(tmp_path: Path) -> None:
    path = photo(
        tmp_path / "offset.jpg",
        "-DateTimeOriginal=2024:07:01 14:03:22",
        "-OffsetTimeOriginal=+02:00",
    )
    result = analyze(MetadataAnalyzer(), path)
    assert result["place"] is None
    assert result["taken_local"] == "2024-07-01T14:03:22"
    assert result["local_time"] == {"offset": "+02:00", "zone": None, "source": "exif"}


@needs_exiftool
def test_missing_place_data_leaves_the_photo_analyzed_without_a_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = photo(
        tmp_path / "lisbon.jpg",
        "-DateTimeOriginal=2024:01:15 10:00:00",
        "-GPSLatitude=38.7223",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=9.1393",
        "-GPSLongitudeRef=W",
    )
    analyzer = MetadataAnalyzer(Geocoder(cities=tmp_path / "missing.gz"))
    first = analyze(analyzer, path)
    second = analyze(analyzer, path)
    assert first["place"] is None and second["place"] is None
    assert first["dhash"] and first["local_time"]["zone"] == "Europe/Lisbon"
    assert [r.levelname for r in caplog.records if "place data" in r.getMessage()] == ["WARNING"]
    assert analyzer.status()["places"]["error"]
