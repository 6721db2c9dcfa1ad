"""Box conversions between the oriented and the stored frame, all 8 orientations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from photovault.sidecar import geometry

BOX = (0.1, 0.2, 0.3, 0.15)


@pytest.mark.parametrize("orientation", geometry.ORIENTATIONS)
def test_oriented_to_stored_and_back_is_the_identity(orientation):
    stored = geometry.oriented_to_stored(BOX, orientation)
    back = geometry.stored_to_oriented(stored, orientation)
    assert back == pytest.approx(BOX)


@pytest.mark.parametrize("orientation", geometry.ORIENTATIONS)
def test_conversion_matches_what_pil_exif_transpose_does_to_pixels(orientation):
    # a white box at a known place in the stored image ...
    w, h = 200, 100
    stored_box = (0.1, 0.2, 0.3, 0.4)
    pixels = np.zeros((h, w), np.uint8)
    x, y, bw, bh = stored_box
    pixels[int(y * h) : int((y + bh) * h), int(x * w) : int((x + bw) * w)] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    # ... lands where our conversion says once PIL turns the image upright
    upright = np.asarray(ImageOps.exif_transpose(image))
    ys, xs = np.nonzero(upright)
    uh, uw = upright.shape
    seen = (
        xs.min() / uw,
        ys.min() / uh,
        (xs.max() + 1 - xs.min()) / uw,
        (ys.max() + 1 - ys.min()) / uh,
    )
    assert geometry.stored_to_oriented(stored_box, orientation) == pytest.approx(seen, abs=0.01)
    assert geometry.oriented_to_stored(seen, orientation) == pytest.approx(stored_box, abs=0.01)


def test_orientation_6_moves_a_top_left_face_to_the_stored_bottom_left():
    # rotate 90° CW for display: the stored image's left column is the displayed top row
    assert geometry.oriented_to_stored((0.0, 0.0, 0.2, 0.1), 6) == pytest.approx(
        (0.0, 0.8, 0.1, 0.2)
    )


def test_centre_form_round_trips():
    assert geometry.to_centre(BOX) == pytest.approx((0.25, 0.275, 0.3, 0.15))
    assert geometry.from_centre(geometry.to_centre(BOX)) == pytest.approx(BOX)


def test_mp_rectangle_is_top_left_text_and_parses_back():
    text = geometry.mp_rectangle((0.311905, 0.208571, 0.113095, 0.198571))
    assert text == "0.311905, 0.208571, 0.113095, 0.198571"
    assert geometry.parse_mp_rectangle(text) == pytest.approx(
        (0.311905, 0.208571, 0.113095, 0.198571)
    )
    assert geometry.parse_mp_rectangle("0.1, 0.2") is None
    assert geometry.parse_mp_rectangle("a, b, c, d") is None


def test_clamp_cuts_a_box_that_overshoots_the_image():
    assert geometry.clamp((-0.1, 0.9, 0.3, 0.2)) == pytest.approx((0.0, 0.9, 0.2, 0.1))


def test_a_bad_orientation_is_refused():
    with pytest.raises(ValueError):
        geometry.oriented_to_stored(BOX, 9)


def test_iou_of_identical_and_disjoint_boxes():
    assert geometry.iou(BOX, BOX) == pytest.approx(1.0)
    assert geometry.iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0
