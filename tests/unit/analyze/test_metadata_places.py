"""The `metadata` analyzer names the place and the local time of a real photo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers.photos import write_jpeg
from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.metadata import PLACE_RETRY_SECONDS, MetadataAnalyzer
from photovault.geo import timezone
from photovault.geo.places import Geocoder, cities_file
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
def test_a_utc_capture_time_gets_the_wall_clock_of_the_position(tmp_path: Path) -> None:
    path = photo(
        tmp_path / "berlin-utc.jpg",
        "-XMP-exif:DateTimeOriginal=2024:12:24 23:30:00Z",
        "-GPSLatitude=52.52",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=13.405",
        "-GPSLongitudeRef=E",
    )
    result = analyze(MetadataAnalyzer(), path)
    assert result["taken_at"] == "2024-12-24T23:30:00Z"
    assert result["taken_local"] == "2024-12-25T00:30:00"
    assert result["local_time"] == {
        "offset": "+01:00",
        "zone": "Europe/Berlin",
        "source": "position",
    }


@needs_exiftool
def test_a_recorded_offset_of_zero_is_the_local_one(tmp_path: Path) -> None:
    path = photo(
        tmp_path / "london.jpg",
        "-DateTimeOriginal=2024:12:24 23:30:00",
        "-OffsetTimeOriginal=+00:00",
        "-GPSLatitude=52.52",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=13.405",
        "-GPSLongitudeRef=E",
    )
    result = analyze(MetadataAnalyzer(), path)
    assert result["taken_local"] == "2024-12-24T23:30:00"
    assert result["local_time"] == {"offset": "+00:00", "zone": None, "source": "exif"}


def _lisbon(tmp_path: Path) -> Path:
    return photo(
        tmp_path / "lisbon.jpg",
        "-DateTimeOriginal=2024:01:15 10:00:00",
        "-GPSLatitude=38.7223",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=9.1393",
        "-GPSLongitudeRef=W",
    )


def _analyze_all(analyzer: MetadataAnalyzer, paths: list[Path]) -> list[Any]:
    with MetadataReader() as reader:
        metas = reader.read(paths)
    items = []
    for i, path in enumerate(paths):
        meta = metas[path]
        assert isinstance(meta, PhotoMetadata)
        items.append(AnalysisItem(i, path, "0" * 64, decode_image(path, 224), meta))
    return analyzer.analyze(items)


@needs_exiftool
def test_missing_place_data_fails_the_photos_with_gps_so_they_are_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lisbon = _lisbon(tmp_path)
    indoors = photo(tmp_path / "indoors.jpg", "-DateTimeOriginal=2024:01:15 10:00:00")
    now = [0.0]
    data = tmp_path / "data" / "geocode.gz"
    analyzer = MetadataAnalyzer(Geocoder(cities=data), clock=lambda: now[0])

    first, no_gps = _analyze_all(analyzer, [lisbon, indoors])
    (second,) = _analyze_all(analyzer, [lisbon])

    assert isinstance(first, AnalyzerError) and "place data" in str(first)
    assert isinstance(second, AnalyzerError)
    assert isinstance(no_gps, dict) and no_gps["dhash"]
    assert [r.levelname for r in caplog.records if "place data" in r.getMessage()] == ["WARNING"]
    assert analyzer.status()["places"]["error"]

    # The data comes back: after the retry delay the photo gets its place.
    data.parent.mkdir()
    shutil.copy(cities_file(), data)
    shutil.copy(cities_file().parent / "countries.csv", data.parent / "countries.csv")
    now[0] += PLACE_RETRY_SECONDS + 1
    (third,) = _analyze_all(analyzer, [lisbon])
    assert isinstance(third, dict)
    assert third["place"]["city"] == "Lisbon"
    assert analyzer.status()["places"]["error"] is None


@needs_exiftool
def test_a_failing_zone_lookup_fails_that_photo_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lisbon = _lisbon(tmp_path)
    indoors = photo(tmp_path / "indoors.jpg", "-DateTimeOriginal=2024:01:15 10:00:00")

    def broken(lat: float, lon: float) -> str | None:
        raise OSError("zone data unreadable")

    monkeypatch.setattr(timezone, "_default_zone_at", broken)
    failed, fine = _analyze_all(MetadataAnalyzer(), [lisbon, indoors])
    assert isinstance(failed, AnalyzerError) and "zone data unreadable" in str(failed)
    assert isinstance(fine, dict) and fine["taken_local"] == "2024-01-15T10:00:00"
