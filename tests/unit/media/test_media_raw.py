"""RAW files decode through their embedded JPEG previews (synthetic containers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_builders import fake_cr3, fake_raw, is_blue, is_red, tiff_header

from photovault.media.decode import decode_image
from photovault.media.raw import (
    EmbeddedJpeg,
    find_embedded_jpegs,
    pick_preview,
    read_raw_info,
)
from photovault.media.types import MediaError


def test_scan_finds_the_real_jpegs_and_skips_sensor_data_and_junk() -> None:
    sizes = [(j.width, j.height) for j in find_embedded_jpegs(fake_raw())]

    assert sizes == [(160, 120), (600, 400), (1500, 1000)]


def test_found_jpeg_spans_exactly_from_start_to_end_marker() -> None:
    data = fake_raw()
    jpegs = find_embedded_jpegs(data)

    assert len(jpegs) == 3  # the loop below checks each of them
    for jpeg in jpegs:
        chunk = data[jpeg.offset : jpeg.end]
        assert chunk.startswith(b"\xff\xd8\xff") and chunk.endswith(b"\xff\xd9")


def test_pick_preview_takes_the_smallest_preview_still_big_enough() -> None:
    jpegs = find_embedded_jpegs(fake_raw())

    assert pick_preview(jpegs, 224, (3000, 2000)) == jpegs[1]
    assert pick_preview(jpegs, 1000, (3000, 2000)) == jpegs[2]


def test_pick_preview_skips_a_letterboxed_thumbnail_of_another_shape() -> None:
    jpegs = find_embedded_jpegs(fake_raw())

    assert pick_preview(jpegs, 100, (3000, 2000)) == jpegs[1]  # not the 4:3 160x120


def test_pick_preview_falls_back_to_the_largest_when_none_is_big_enough() -> None:
    jpegs = [EmbeddedJpeg(0, 10, 300, 200), EmbeddedJpeg(10, 10, 900, 600)]

    assert pick_preview(jpegs, 4000) == jpegs[1]


def test_raw_info_reads_orientation_and_full_size_from_the_tiff_header() -> None:
    info = read_raw_info(fake_raw(orientation=8, full_size=(6000, 4000)))

    assert (info.orientation, info.size) == (8, (6000, 4000))


def test_raw_decodes_its_preview_upright_with_the_container_size(tmp_path: Path) -> None:
    path = tmp_path / "DSC_0001.NEF"
    path.write_bytes(fake_raw(orientation=6))

    decoded = decode_image(path, 224)

    assert decoded.source == "raw-preview-draft-1/2"  # the 600x400 preview at half scale
    assert decoded.stored_size == (3000, 2000)
    assert decoded.orientation == 6
    assert decoded.pixels.shape == (224, 149, 3)
    assert is_red(decoded.pixels[5, -5]) and is_blue(decoded.pixels[5, 5])


def test_raw_from_bytes_decodes_like_raw_from_file(tmp_path: Path) -> None:
    data = fake_raw(orientation=1)

    decoded = decode_image(tmp_path / "IMG_0001.dng", 224, data=data)

    assert decoded.pixels.shape == (149, 224, 3)
    assert is_red(decoded.pixels[5, 5])


def test_raw_without_size_in_its_header_reports_the_largest_preview_size(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.ARW"
    path.write_bytes(fake_raw(orientation=1, full_size=None))

    assert decode_image(path, 224).stored_size == (1500, 1000)


def test_cr3_orientation_and_size_come_from_its_cmt_boxes(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.CR3"
    path.write_bytes(fake_cr3(orientation=8, full_size=(6000, 4000)))

    decoded = decode_image(path, 224)

    assert decoded.orientation == 8
    assert decoded.stored_size == (6000, 4000)
    assert is_red(decoded.pixels[-5, 5])


def test_raw_without_any_jpeg_preview_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.DNG"
    path.write_bytes(tiff_header({0x0112: 1}) + bytes(1000))

    with pytest.raises(MediaError, match="without an embedded JPEG preview"):
        decode_image(path, 224)


def test_plain_tiff_with_a_raw_name_is_read_as_raw_and_tiff_name_as_tiff(tmp_path: Path) -> None:
    data = fake_raw(orientation=1)

    assert decode_image(tmp_path / "a.pef", 224, data=data).source.startswith("raw-preview")
    with pytest.raises(MediaError):
        decode_image(tmp_path / "a.tif", 224, data=data)  # no image data as a TIFF
