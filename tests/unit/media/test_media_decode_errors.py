"""Files we cannot decode fail with a MediaError whose reason names the problem."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from media_builders import jpeg_bytes, png_claiming_size, quadrant_image
from PIL import Image

from photovault.media.decode import DecodeLimits, decode_image
from photovault.media.types import MediaError


def reason_for(path: Path, **kwargs: object) -> str:
    with pytest.raises(MediaError) as caught:
        decode_image(path, 224, **kwargs)  # type: ignore[arg-type]
    assert caught.value.path == str(path)
    return caught.value.reason


def test_truncated_jpeg_is_refused_as_truncated(tmp_path: Path) -> None:
    data = jpeg_bytes(quadrant_image((800, 600)), quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])

    assert reason_for(path).startswith("truncated JPEG")


def test_jpeg_cut_inside_its_header_is_refused_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "stub.jpg"
    path.write_bytes(jpeg_bytes(quadrant_image((80, 60)))[:30])

    assert reason_for(path).startswith("truncated JPEG")


def test_zero_byte_file_is_refused_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()

    assert reason_for(path) == "empty file (0 bytes)"


def test_zero_bytes_passed_as_data_are_refused_as_empty(tmp_path: Path) -> None:
    assert reason_for(tmp_path / "x.jpg", data=b"") == "empty file (0 bytes)"


def test_text_file_named_jpg_is_refused_as_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("Shopping list:\n- milk\n- bread\n", encoding="utf-8")

    assert reason_for(path) == "not an image (looks like text)"


def test_saved_web_page_named_jpg_is_refused_as_html(tmp_path: Path) -> None:
    path = tmp_path / "download.jpg"
    path.write_text("<!DOCTYPE html><html><body>404</body></html>", encoding="utf-8")

    assert reason_for(path) == "not an image (looks like an HTML page)"


def test_unknown_binary_format_is_refused_as_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "image.bmp"
    Image.new("RGB", (10, 10)).save(path, "BMP")

    assert reason_for(path).startswith("unsupported format")


def test_png_header_claiming_100000_squared_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(100_000, 100_000))

    started = time.perf_counter()
    reason = reason_for(path)

    assert reason == "decompression bomb: 100000x100000 exceeds the 100-megapixel limit"
    assert time.perf_counter() - started < 0.5  # 30 GB of pixels were never allocated


def test_image_wider_than_max_side_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    path.write_bytes(png_claiming_size(70_000, 1))

    assert "exceeds the 65000-pixel side limit" in reason_for(path)


def test_custom_limits_are_applied_to_ordinary_images(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(path)

    reason = reason_for(path, limits=DecodeLimits(max_pixels=5_000))

    assert reason == "decompression bomb: 100x100 exceeds the 0.005-megapixel limit"


def test_directory_is_refused_as_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "album.jpg"
    folder.mkdir()

    assert reason_for(folder) == "is a directory, not a file"


@pytest.mark.timeout(5)
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)

    assert reason_for(fifo) == "not a regular file (a FIFO, socket or device)"


def test_missing_file_is_refused_as_not_found(tmp_path: Path) -> None:
    assert reason_for(tmp_path / "gone.jpg") == "file not found (deleted or moved?)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_refused_as_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    path.write_bytes(jpeg_bytes(quadrant_image((20, 20))))
    path.chmod(0)

    assert reason_for(path) == "permission denied"


def test_corrupt_png_data_is_refused_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(png_claiming_size(10, 10)[:-20])  # IDAT cut short, no IEND

    reason = reason_for(path)

    assert reason.startswith(("truncated PNG", "corrupt PNG"))


def test_media_error_survives_pickling_between_processes(tmp_path: Path) -> None:
    import pickle

    with pytest.raises(MediaError) as caught:
        decode_image(tmp_path / "gone.jpg", 224)

    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.path, copy.reason) == (caught.value.path, caught.value.reason)
