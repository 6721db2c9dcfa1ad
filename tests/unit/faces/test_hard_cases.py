"""Group photos with 50+ faces and faces cut by the frame, built from real face photos."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..conftest import needs_dlib


def face_tile(pixels: np.ndarray, box: list[float], side: int) -> Image.Image:
    """A square crop around a detected face, scaled to `side` px."""
    h, w = pixels.shape[:2]
    x, y, bw, bh = box
    cx, cy, r = (x + bw / 2) * w, (y + bh / 2) * h, max(bw * w, bh * h)
    crop = Image.fromarray(pixels).crop((int(cx - r), int(cy - r), int(cx + r), int(cy + r)))
    return crop.resize((side, side))


@needs_dlib
def test_a_group_photo_with_sixty_faces_finds_them_all(analyzer, photos) -> None:
    sources = []
    for name in ("obama", "obama2", "biden", "astronaut"):
        (face,) = analyzer.analyze_pixels(photos[name])["faces"]
        sources.append(face_tile(photos[name], face["box"], 170))
    cols, rows = 10, 6  # 60 people, ~170 px each: a 1700x1020 "class photo"
    group = Image.new("RGB", (cols * 170, rows * 170), (90, 90, 90))
    for i in range(cols * rows):
        tile = sources[i % len(sources)]
        if (i // len(sources)) % 2:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        group.paste(tile, ((i % cols) * 170, (i // cols) * 170))
    faces = analyzer.analyze_pixels(np.asarray(group))["faces"]
    assert len(faces) >= 55, len(faces)
    for f in faces:
        x, y, w, h = f["box"]
        assert x >= 0 and y >= 0 and x + w <= 1.0001 and y + h <= 1.0001


@needs_dlib
def test_a_face_cut_by_the_frame_gives_a_box_inside_the_image(analyzer, photos) -> None:
    pixels = photos["obama"]
    (face,) = analyzer.analyze_pixels(pixels)["faces"]
    w = pixels.shape[1]
    x, _y, bw, _bh = face["box"]
    cut = pixels[:, : int((x + bw * 0.7) * w)]  # the right third of the face is outside
    faces = analyzer.analyze_pixels(cut)["faces"]
    assert faces  # the cut face is still found, so the loop below checks its box
    for f in faces:
        fx, fy, fw, fh = f["box"]
        assert fx >= 0 and fy >= 0 and fx + fw <= 1.0001 and fy + fh <= 1.0001
