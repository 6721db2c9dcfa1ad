"""Motion photos (a JPEG with a clip appended) decode as their still, marked as such."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from helpers.photos import write_jpeg
from helpers.videos import make_clip, make_motion_photo
from photovault.media.decode import decode_image
from photovault.media.metadata import MetadataReader
from photovault.media.motionphoto import find_motion_video, is_motion_photo
from photovault.media.types import PhotoMetadata
from photovault.media.video import decode_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

STILL = skdata.chelsea()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("motion")


@pytest.fixture(scope="module")
def clip(folder: Path) -> Path:
    return make_clip(folder / "clip.mp4", [(STILL, 0.6)], size=(160, 120))


@pytest.mark.parametrize("style", ["google", "microvideo", "samsung"])
def test_a_motion_photo_decodes_as_its_still_marked_motion_photo(
    folder: Path, clip: Path, style: str
) -> None:
    path = make_motion_photo(folder / f"PXL_{style}.MP.jpg", STILL, clip, style=style)
    decoded = decode_image(path, 128, data=path.read_bytes())
    assert decoded.kind == "motion_photo"
    assert decoded.frames is None
    assert decoded.stored_size == (STILL.shape[1], STILL.shape[0])
    assert decoded.pixels.dtype == np.uint8
    assert max(decoded.pixels.shape[:2]) == 128


@pytest.mark.parametrize("style", ["google", "microvideo", "samsung"])
def test_the_embedded_clip_is_found_byte_for_byte(folder: Path, clip: Path, style: str) -> None:
    path = make_motion_photo(folder / f"found_{style}.jpg", STILL, clip, style=style)
    data = path.read_bytes()
    found = find_motion_video(data)
    assert found is not None
    start, end = found
    assert data[start:end] == clip.read_bytes()


def test_the_embedded_clip_is_a_playable_video(folder: Path, clip: Path) -> None:
    path = make_motion_photo(folder / "playable.jpg", STILL, clip)
    data = path.read_bytes()
    found = find_motion_video(data)
    assert found is not None
    extracted = folder / "extracted.mp4"
    extracted.write_bytes(data[found[0] : found[1]])
    assert decode_video(extracted, 64).kind == "video"


def test_a_motion_photo_read_from_its_path_is_marked_too(folder: Path, clip: Path) -> None:
    path = make_motion_photo(folder / "bypath.jpg", STILL, clip)
    assert decode_image(path, 128).kind == "motion_photo"


def test_a_plain_jpeg_stays_a_photo(folder: Path) -> None:
    path = write_jpeg(folder / "plain.jpg", seed=2)
    assert decode_image(path, 64, data=path.read_bytes()).kind == "photo"
    assert not is_motion_photo(path.read_bytes())


def test_a_motion_photo_flag_without_its_clip_is_a_plain_photo(folder: Path, clip: Path) -> None:
    # Editors keep the XMP but drop the appended clip.
    path = make_motion_photo(folder / "edited.jpg", STILL, clip, flag_only=True)
    assert decode_image(path, 64).kind == "photo"


def test_a_jpeg_that_merely_contains_the_word_ftyp_is_not_a_motion_photo(folder: Path) -> None:
    path = folder / "ftyp.jpg"
    path.write_bytes(write_jpeg(folder / "base.jpg", seed=4).read_bytes() + b"\x00\x00ftyp")
    assert decode_image(path, 64).kind == "photo"


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_a_motion_photos_metadata_is_the_stills(folder: Path, clip: Path) -> None:
    path = make_motion_photo(folder / "meta.jpg", STILL, clip)
    with MetadataReader() as reader:
        meta = reader.read([path])[path]
    assert isinstance(meta, PhotoMetadata)
    assert meta.mime == "image/jpeg"
    assert (meta.width, meta.height) == (STILL.shape[1], STILL.shape[0])
    assert meta.duration is None
