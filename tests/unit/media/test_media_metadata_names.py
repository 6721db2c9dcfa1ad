"""MetadataReader with file names that are not UTF-8, against a real exiftool.

File names are bytes on Linux; Python hands them around as str with the bad
bytes as lone surrogates. Each test builds real files under such names.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from exiftool import ExifToolHelper
from media_builders import jpeg_bytes, quadrant_image

from photovault.media.metadata import MetadataReader
from photovault.media.types import MediaError, PhotoMetadata

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")


def named(folder: Path, raw_name: bytes) -> Path:
    """The path of `raw_name` in `folder`, as Python gives it (os.fsdecode)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + raw_name))


def tagged_jpeg(path: Path, **tags: object) -> Path:
    """A real JPEG at `path` (any bytes), tagged by exiftool."""
    with open(os.fsencode(path), "wb") as fh:
        fh.write(jpeg_bytes(quadrant_image((64, 48))))
    if tags:
        # exiftool writes a temp copy and renames it: give it a UTF-8 name.
        plain = path.with_name("tagging.jpg")
        os.rename(os.fsencode(path), os.fsencode(plain))
        with ExifToolHelper() as et:
            et.set_tags([str(plain)], tags, params=["-overwrite_original"])
        os.rename(os.fsencode(plain), os.fsencode(path))
    return path


@pytest.fixture(scope="module")
def reader():
    with MetadataReader() as shared:
        yield shared


def test_a_latin1_file_name_gets_its_capture_time_camera_and_gps(
    reader: MetadataReader, tmp_path: Path
) -> None:
    path = tagged_jpeg(
        named(tmp_path, b"caf\xe9.jpg"),
        DateTimeOriginal="2019:08:04 18:30:00",
        Make="Canon",
        Model="Canon EOS 80D",
        GPSLatitude=48.8566,
        GPSLatitudeRef="N",
        GPSLongitude=2.3522,
        GPSLongitudeRef="E",
    )

    meta = reader.read([path])[path]

    assert isinstance(meta, PhotoMetadata), meta
    assert meta.taken_at == "2019-08-04T18:30:00"
    assert meta.camera == "Canon EOS 80D"
    assert meta.gps_lat == pytest.approx(48.8566, abs=1e-6)
    assert meta.gps_lon == pytest.approx(2.3522, abs=1e-6)


def test_a_batch_gives_each_non_utf8_name_its_own_row_without_reading_files_one_by_one(
    reader: MetadataReader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # exiftool prints both bad names as "caf?.jpg" unless asked for base64 (-b).
    cameras = {
        b"caf\xe9.jpg": "Alpha",
        b"caf\xe8.jpg": "Bravo",
        "café.jpg".encode(): "Charlie",
        b"-caf\xff.jpg": "Delta",  # a leading dash must not read as an option
    }
    paths = {raw: tagged_jpeg(named(tmp_path, raw), Make=camera) for raw, camera in cameras.items()}

    def one_by_one(path: Path) -> PhotoMetadata | MediaError:
        raise AssertionError(f"{path} was read alone: the batch lost its row")

    monkeypatch.setattr(reader, "_read_one", one_by_one)
    got = reader.read(paths.values())

    for raw, camera in cameras.items():
        meta = got[paths[raw]]
        assert isinstance(meta, PhotoMetadata), (raw, meta)
        assert meta.camera == camera, raw


def test_an_unreadable_file_with_a_non_utf8_name_gets_exiftools_reason(
    reader: MetadataReader, tmp_path: Path
) -> None:
    path = named(tmp_path, b"notes-\xff.jpg")
    with open(os.fsencode(path), "wb") as fh:
        fh.write(b"a shopping list, not a photo\n" * 20)

    result = reader.read([path])[path]

    assert isinstance(result, MediaError)
    assert "Unicode" not in result.reason
    assert result.reason.startswith(("exiftool:", "not an image")), result.reason
