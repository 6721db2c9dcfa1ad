"""Decoding the formats we support into small upright RGB pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from media_builders import (
    BLUE,
    exif_with_orientation,
    is_blue,
    is_red,
    jpeg_bytes,
    quadrant_image,
    tiff_rgb16,
)
from PIL import Image, ImageOps

from photovault.media.decode import decode_image


def test_jpeg_decodes_through_draft_to_a_long_side_of_exactly_target(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    quadrant_image((2400, 1800)).save(path, quality=85)

    decoded = decode_image(path, 224)

    assert decoded.pixels.shape == (168, 224, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.source == "draft-1/8"
    assert decoded.stored_size == (2400, 1800)


def test_jpeg_draft_stops_at_the_smallest_scale_still_above_target(tmp_path: Path) -> None:
    path = tmp_path / "mid.jpg"
    quadrant_image((1000, 750)).save(path)

    decoded = decode_image(path, 224)

    assert decoded.source == "draft-1/4"  # 1/8 would give 125 px, below 224
    assert max(decoded.pixels.shape[:2]) == 224


def test_panorama_draft_is_limited_by_its_long_side_only(tmp_path: Path) -> None:
    path = tmp_path / "pano.jpg"
    Image.new("RGB", (4000, 500), BLUE).save(path)

    decoded = decode_image(path, 224)

    assert decoded.source == "draft-1/8"
    assert decoded.pixels.shape == (28, 224, 3)


def test_small_image_is_not_upscaled(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    quadrant_image((120, 90)).save(path)

    decoded = decode_image(path, 224)

    assert decoded.pixels.shape == (90, 120, 3)
    assert decoded.source == "full"


def test_decoding_from_bytes_gives_the_same_pixels_as_from_the_file(quadrant_jpeg) -> None:
    path = quadrant_jpeg(size=(800, 600))

    from_file = decode_image(path, 100)
    from_bytes = decode_image(Path("/nonexistent/name.jpg"), 100, data=path.read_bytes())

    np.testing.assert_array_equal(from_file.pixels, from_bytes.pixels)


def test_orientation_6_puts_the_red_top_left_corner_at_the_top_right(quadrant_jpeg) -> None:
    decoded = decode_image(quadrant_jpeg(orientation=6), 224)

    px = decoded.pixels
    assert px.shape == (224, 168, 3)  # portrait once upright
    assert is_red(px[5, -5]) and is_blue(px[5, 5]) and is_blue(px[-5, -5])
    assert decoded.orientation == 6


def test_orientation_8_puts_the_red_top_left_corner_at_the_bottom_left(quadrant_jpeg) -> None:
    decoded = decode_image(quadrant_jpeg(orientation=8), 224)

    px = decoded.pixels
    assert px.shape == (224, 168, 3)
    assert is_red(px[-5, 5]) and is_blue(px[5, 5]) and is_blue(px[-5, -5])


def test_rotated_jpeg_reports_the_unrotated_stored_size(quadrant_jpeg) -> None:
    decoded = decode_image(quadrant_jpeg(orientation=6, size=(800, 600)), 224)

    assert decoded.stored_size == (800, 600)
    assert decoded.oriented_size == (600, 800)


def test_png_with_alpha_shows_transparent_areas_as_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    im = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    im.paste((0, 0, 0, 0), (0, 0, 32, 64))  # left half fully transparent
    im.save(path)

    px = decode_image(path, 224).pixels

    assert tuple(px[10, 5]) == (255, 255, 255)
    assert is_blue(px[10, 60])


def test_gif_decodes_the_first_frame_of_an_animation(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (50, 40), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)

    px = decode_image(path, 224).pixels

    assert px.shape == (40, 50, 3)
    assert is_red(px[20, 25])


def test_palette_png_with_transparency_decodes_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    im = Image.new("P", (30, 30), 1)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    im.save(path, transparency=0)

    px = decode_image(path, 224).pixels

    assert px.shape == (30, 30, 3)
    assert is_blue(px[15, 15])


def test_16_bit_grayscale_tiff_keeps_its_tones_instead_of_clipping(tmp_path: Path) -> None:
    path = tmp_path / "gray16.tif"
    Image.new("I;16", (40, 30), 40000).save(path)

    px = decode_image(path, 224).pixels

    assert tuple(px[0, 0]) == (156, 156, 156)  # 40000 >> 8


def test_16_bit_rgb_tiff_decodes(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.tif"
    pixels = np.zeros((30, 40, 3), np.uint16)
    pixels[..., 2] = 65535
    tiff_rgb16(path, pixels)

    px = decode_image(path, 224).pixels

    assert px.shape == (30, 40, 3)
    assert is_blue(px[10, 10])


def test_webp_decodes(tmp_path: Path) -> None:
    path = tmp_path / "photo.webp"
    quadrant_image((600, 400)).save(path, quality=90)

    decoded = decode_image(path, 224)

    assert decoded.pixels.shape == (149, 224, 3)
    assert is_red(decoded.pixels[10, 10])


def test_cmyk_jpeg_decodes_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (100, 80), (255, 255, 0, 0)).save(path)  # cyan + magenta = blue

    px = decode_image(path, 224).pixels

    assert is_blue(px[40, 50])


def test_png_saved_with_a_jpg_name_decodes_by_its_content(tmp_path: Path) -> None:
    path = tmp_path / "actually_png.jpg"
    quadrant_image((80, 60)).save(path, "PNG")

    assert decode_image(path, 224).pixels.shape == (60, 80, 3)


def test_heic_decodes_upright_and_reports_the_unrotated_stored_size(tmp_path: Path) -> None:
    path = tmp_path / "phone.heic"
    # EXIF as bytes: pillow-heif then writes the rotation as an irot box, as phones do.
    exif = exif_with_orientation(6).tobytes()
    quadrant_image((400, 300)).save(path, "HEIF", exif=exif, quality=90)

    decoded = decode_image(path, 224)

    assert decoded.pixels.shape == (224, 168, 3)
    assert is_red(decoded.pixels[5, -5]) and is_blue(decoded.pixels[5, 5])
    assert decoded.stored_size == (400, 300)
    assert decoded.orientation == 6


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7, 8])
def test_heic_orientation_reported_matches_the_transform_applied(
    tmp_path: Path, orientation: int
) -> None:
    path = tmp_path / "o.heic"
    src = quadrant_image((40, 30))
    exif = exif_with_orientation(orientation)
    src.save(path, "HEIF", exif=exif.tobytes(), quality=100, chroma=444)
    buf = io.BytesIO()
    src.save(buf, "PNG", exif=exif)
    expected = np.array(ImageOps.exif_transpose(Image.open(buf)))

    decoded = decode_image(path, 224)

    assert decoded.orientation == orientation
    assert decoded.pixels.shape == expected.shape
    assert np.abs(decoded.pixels.astype(int) - expected).mean() < 3


def test_heic_with_exif_orientation_but_no_irot_is_left_as_stored(tmp_path: Path) -> None:
    path = tmp_path / "odd.heic"
    # An Image.Exif object makes pillow-heif keep the tag in EXIF without an irot box.
    quadrant_image((400, 300)).save(path, "HEIF", exif=exif_with_orientation(6), quality=90)

    decoded = decode_image(path, 224)

    assert decoded.orientation == 1
    assert decoded.pixels.shape == (168, 224, 3)
    assert is_red(decoded.pixels[5, 5])


def test_heic_uses_its_embedded_thumbnail_when_big_enough(tmp_path: Path) -> None:
    path = tmp_path / "thumb.heic"
    quadrant_image((1024, 768)).save(path, "HEIF", quality=80, thumbnails=[320])

    decoded = decode_image(path, 224)

    assert decoded.source == "heif-thumbnail"
    assert decoded.stored_size == (1024, 768)
    assert decoded.pixels.shape == (168, 224, 3)
    assert is_red(decoded.pixels[10, 10])


def test_heic_thumbnail_too_small_for_target_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "thumb.heic"
    quadrant_image((512, 384)).save(path, "HEIF", quality=80, thumbnails=[128])

    assert decode_image(path, 224).source == "full"


def test_avif_decodes_and_applies_its_orientation(tmp_path: Path) -> None:
    path = tmp_path / "photo.avif"
    quadrant_image((400, 300)).save(path, "AVIF", exif=exif_with_orientation(8), quality=90)

    decoded = decode_image(path, 224)

    assert decoded.pixels.shape == (224, 168, 3)
    assert is_red(decoded.pixels[-5, 5])
    assert decoded.stored_size == (400, 300)


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7])
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    data = jpeg_bytes(quadrant_image((64, 48)), exif=exif_with_orientation(orientation))
    expected = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))

    decoded = decode_image(Path("x.jpg"), 224, data=data)

    np.testing.assert_array_equal(decoded.pixels, expected)
