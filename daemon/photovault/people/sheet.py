"""Contact sheets of a person's faces, for `vaultctl people show` and review.

A grid of square thumbnails is the quickest way for a person to spot the one
face that does not belong (then `reject` it), which is why crops keep some
margin around the box: hair and chin help recognise people more than the
tight box does.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TILE = 128
GAP = 4
BACKGROUND = (32, 32, 32)


def crop_face(
    image: Image.Image | np.ndarray, box: Sequence[float], margin: float = 0.25
) -> Image.Image:
    """Crop a normalised [x, y, w, h] box (oriented image) with `margin` of the box on each side."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    width, height = image.size
    x, y, w, h = box
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    side = max(w * width, h * height) * (1 + 2 * margin)
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    return image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


def _tile(crop: Image.Image | np.ndarray, size: int) -> Image.Image:
    if isinstance(crop, np.ndarray):
        crop = Image.fromarray(crop)
    crop = crop.convert("RGB")
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (size, size), BACKGROUND)
    tile.paste(crop, ((size - crop.width) // 2, (size - crop.height) // 2))
    return tile


def render_face_sheet(
    crops: Sequence[Image.Image | np.ndarray],
    out_path: Path | str,
    *,
    tile: int = TILE,
    columns: int | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write a grid of face crops (PIL images or RGB arrays) to `out_path` (PNG/JPEG by suffix).

    Written to a temp file beside the target and renamed into place, so a
    reader never sees half a sheet. An empty `crops` gives a one-tile blank sheet.
    """
    out_path = Path(out_path)
    count = max(len(crops), 1)
    columns = columns or max(1, min(count, math.ceil(math.sqrt(count))))
    rows = math.ceil(count / columns)
    label_h = 14 if labels else 0
    sheet = Image.new(
        "RGB",
        (columns * (tile + GAP) + GAP, rows * (tile + label_h + GAP) + GAP),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    for i, crop in enumerate(crops):
        col, row = i % columns, i // columns
        x, y = GAP + col * (tile + GAP), GAP + row * (tile + label_h + GAP)
        sheet.paste(_tile(crop, tile), (x, y))
        if labels and i < len(labels):
            draw.text((x + 2, y + tile + 1), str(labels[i])[:20], fill=(230, 230, 230))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=out_path.parent, prefix=f".{out_path.name}.", suffix=out_path.suffix
    )
    os.close(fd)
    try:
        sheet.save(tmp)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path
