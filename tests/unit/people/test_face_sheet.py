from __future__ import annotations

import numpy as np
from PIL import Image

from photovault.people.sheet import crop_face, render_face_sheet


def test_a_sheet_of_five_crops_is_a_three_by_two_grid_written_atomically(tmp_path):
    crops = [np.full((40 + 10 * i, 30, 3), 40 * i, np.uint8) for i in range(5)]
    out = render_face_sheet(crops, tmp_path / "sheet.png", tile=64, labels=list("abcde"))
    with Image.open(out) as sheet:
        assert sheet.size == (3 * 68 + 4, 2 * (64 + 14 + 4) + 4)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_a_crop_keeps_a_margin_around_the_normalised_box():
    image = Image.new("RGB", (200, 100))
    crop = crop_face(image, [0.25, 0.25, 0.1, 0.2], margin=0.25)
    assert crop.size == (30, 30)


def test_an_empty_sheet_is_still_an_image(tmp_path):
    out = render_face_sheet([], tmp_path / "empty.jpg")
    assert Image.open(out).size[0] > 0
