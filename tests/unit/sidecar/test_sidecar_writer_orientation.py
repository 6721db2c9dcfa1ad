"""Faces of rotated photos land on the face in the stored frame (MWG 2.0 §5.9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from sidecar_helpers import as_list, exiftool_json, exiv2_keys, needs_tools

from photovault.sidecar.model import FaceRegion, SidecarContent

pytestmark = needs_tools

STORED_SIZE = (160, 120)
STORED_FACE = (0.125, 0.25, 0.25, 0.5)  # where the "face" really is in the stored pixels


def _photo_with_face(folder: Path, orientation: int) -> Path:
    w, h = STORED_SIZE
    x, y, bw, bh = STORED_FACE
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[int(y * h) : int((y + bh) * h), int(x * w) : int((x + bw) * w)] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = folder / f"IMG_o{orientation}.jpg"
    Image.fromarray(pixels).save(photo, exif=exif.tobytes(), quality=95)
    return photo


def _detect(photo: Path) -> tuple[float, float, float, float]:
    """What a face detector would report: the bright box in the UPRIGHT image."""
    upright = np.asarray(ImageOps.exif_transpose(Image.open(photo)).convert("L")) > 128
    ys, xs = np.nonzero(upright)
    h, w = upright.shape
    return (
        xs.min() / w,
        ys.min() / h,
        (xs.max() + 1 - xs.min()) / w,
        (ys.max() + 1 - ys.min()) / h,
    )


@pytest.mark.parametrize("orientation", [6, 8, 3, 1])
def test_region_of_a_rotated_photo_lands_on_the_face_in_the_stored_frame(
    writer, tmp_path, orientation
):
    photo = _photo_with_face(tmp_path, orientation)
    seen = _detect(photo)
    if orientation in (6, 8):
        assert seen[2] != pytest.approx(STORED_FACE[2], abs=0.05)  # really rotated
    content = SidecarContent(faces=(FaceRegion(seen, "Rot", "f-rot", 0.9, "test"),))
    sidecar = tmp_path / (photo.name + ".xmp")
    result = writer.write(photo, sidecar, content, STORED_SIZE, orientation)
    assert result.status == "written"

    data = exiftool_json(writer, sidecar)
    info = data["XMP-mwg-rs:RegionInfo"]
    assert (int(info["AppliedToDimensions"]["W"]), int(info["AppliedToDimensions"]["H"])) == (
        STORED_SIZE
    )
    area = as_list(info["RegionList"])[0]["Area"]
    cx, cy, w, h = (float(area[c]) for c in "XYWH")
    assert (cx - w / 2, cy - h / 2, w, h) == pytest.approx(STORED_FACE, abs=0.01)
    mp = as_list(data["XMP-MP:RegionInfoMP"]["Regions"])[0]["Rectangle"]
    assert [float(v) for v in mp.split(",")] == pytest.approx(STORED_FACE, abs=0.01)

    exiv2 = exiv2_keys(sidecar)
    prefix = "Xmp.mwg-rs.Regions/mwg-rs:RegionList[1]/mwg-rs:Area/stArea:"
    assert float(exiv2[prefix + "x"][1]) == pytest.approx(cx)
    assert float(exiv2[prefix + "w"][1]) == pytest.approx(w)
