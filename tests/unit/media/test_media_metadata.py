"""MetadataReader against a real exiftool, on JPEGs tagged by exiftool itself."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from exiftool import ExifToolHelper
from media_builders import jpeg_bytes, quadrant_image

from photovault.media.metadata import (
    MetadataReader,
    MetadataUnavailable,
    camera_name,
    iso_datetime,
)
from photovault.media.types import MediaError, PhotoMetadata

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")


@pytest.fixture(scope="module")
def tagged_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("meta") / "tagged.jpg"
    path.write_bytes(jpeg_bytes(quadrant_image((400, 300))))
    tags = {
        "DateTimeOriginal": "2024:07:01 14:03:22",
        "OffsetTimeOriginal": "+02:00",
        "GPSLatitude": 33.8568,
        "GPSLatitudeRef": "S",
        "GPSLongitude": 151.2153,
        "GPSLongitudeRef": "E",
        "Make": "NIKON CORPORATION",
        "Model": "NIKON D850",
        "LensModel": "24-70mm f/2.8",
        "Orientation#": 6,
        "FNumber": 2.8,
    }
    with ExifToolHelper() as et:
        et.set_tags([str(path)], tags, params=["-overwrite_original"])
    return path


@pytest.fixture(scope="module")
def reader():
    with MetadataReader() as shared:
        yield shared


@pytest.fixture(scope="module")
def tagged(reader: MetadataReader, tagged_jpeg: Path) -> PhotoMetadata:
    result = reader.read([tagged_jpeg])[tagged_jpeg]
    assert isinstance(result, PhotoMetadata)
    return result


def test_taken_at_is_iso_8601_with_the_recorded_offset(tagged: PhotoMetadata) -> None:
    assert tagged.taken_at == "2024-07-01T14:03:22+02:00"


def test_gps_south_latitude_comes_back_negative(tagged: PhotoMetadata) -> None:
    assert tagged.gps_lat == pytest.approx(-33.8568, abs=1e-6)
    assert tagged.gps_lon == pytest.approx(151.2153, abs=1e-6)


def test_camera_does_not_repeat_the_make_already_in_the_model(tagged: PhotoMetadata) -> None:
    assert tagged.camera == "NIKON D850"


def test_lens_size_orientation_and_mime_are_read(tagged: PhotoMetadata) -> None:
    assert tagged.lens == "24-70mm f/2.8"
    assert (tagged.width, tagged.height) == (400, 300)
    assert tagged.orientation == 6
    assert tagged.mime == "image/jpeg"
    assert tagged.extra["FNumber"] == pytest.approx(2.8)


def test_photo_without_tags_has_unknown_fields(reader: MetadataReader, tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    quadrant_image((40, 30)).save(path)

    meta = reader.read([path])[path]

    assert isinstance(meta, PhotoMetadata)
    assert (meta.taken_at, meta.gps_lat, meta.camera) == (None, None, None)
    assert (meta.width, meta.height, meta.mime) == (40, 30, "image/png")


def test_batch_with_bad_files_still_returns_the_good_ones(
    reader: MetadataReader, tagged_jpeg: Path, tmp_path: Path
) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    missing = tmp_path / "gone.jpg"
    empty = tmp_path / "empty.jpg"
    empty.touch()

    results = reader.read([text, tagged_jpeg, missing, empty])

    assert isinstance(results[tagged_jpeg], PhotoMetadata)
    assert results[tagged_jpeg].camera == "NIKON D850"
    assert isinstance(results[text], MediaError) and "text/plain" in results[text].reason
    assert isinstance(results[missing], MediaError) and "not found" in results[missing].reason
    assert isinstance(results[empty], MediaError) and "empty" in results[empty].reason


def test_reader_starts_a_new_exiftool_after_the_old_one_died(tagged_jpeg: Path) -> None:
    with MetadataReader() as reader:
        reader.read([tagged_jpeg])
        old_pid = reader.pid
        assert old_pid is not None
        os.kill(old_pid, 9)
        time.sleep(0.1)

        result = reader.read([tagged_jpeg])[tagged_jpeg]

        assert isinstance(result, PhotoMetadata)
        assert reader.pid not in (None, old_pid)


@pytest.mark.timeout(60)
def test_exiftool_dying_during_a_batch_does_not_hang_the_reader(
    tagged_jpeg: Path, tmp_path: Path
) -> None:
    paths = []
    for i in range(120):
        copy = tmp_path / f"copy{i:03}.jpg"
        shutil.copyfile(tagged_jpeg, copy)
        paths.append(copy)
    with MetadataReader(batch_size=len(paths)) as reader:
        reader.read(paths[:1])
        pid = reader.pid
        assert pid is not None
        threading.Timer(0.1, os.kill, (pid, 9)).start()

        results = reader.read(paths)

        assert set(results) == set(paths)
        assert sum(isinstance(r, PhotoMetadata) for r in results.values()) >= len(paths) - 1
        assert reader.pid != pid


def test_missing_exiftool_raises_metadata_unavailable(tagged_jpeg: Path) -> None:
    with (
        MetadataReader(executable="/nonexistent/exiftool") as reader,
        pytest.raises(MetadataUnavailable, match="exiftool could not be started"),
    ):
        reader.read([tagged_jpeg])


def test_iso_datetime_without_offset_has_no_zone() -> None:
    assert iso_datetime("2024:07:01 14:03:22") == "2024-07-01T14:03:22"


def test_iso_datetime_keeps_subseconds_and_the_offset_in_the_value() -> None:
    assert iso_datetime("2024:07:01 14:03:22.450+0200") == "2024-07-01T14:03:22.45+02:00"


def test_iso_datetime_keeps_a_utc_z_apart_from_a_zero_offset() -> None:
    assert iso_datetime("2024:12:24 23:30:00Z") == "2024-12-24T23:30:00Z"
    assert iso_datetime("2024:12:24 23:30:00", "Z") == "2024-12-24T23:30:00Z"
    assert iso_datetime("2024:12:24 23:30:00", "+00:00") == "2024-12-24T23:30:00+00:00"


def test_iso_datetime_refuses_an_unset_camera_clock() -> None:
    assert iso_datetime("0000:00:00 00:00:00", "+01:00") is None


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Canon", "Canon EOS R5", "Canon EOS R5"),
        ("NIKON CORPORATION", "NIKON Z 6", "NIKON Z 6"),
        ("Apple", "iPhone 15 Pro", "Apple iPhone 15 Pro"),
        ("SONY", None, "SONY"),
        (None, "X100V", "X100V"),
        (None, None, None),
    ],
)
def test_camera_name_joins_make_and_model_once(
    make: str | None, model: str | None, expected: str | None
) -> None:
    assert camera_name(make, model) == expected
