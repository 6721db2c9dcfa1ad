"""Builders for small test photos: every input is generated at test time, no blobs."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def quadrant_image(size: tuple[int, int] = (400, 300)) -> Image.Image:
    """Blue picture whose top-left quadrant is red: shows where a rotation moved it."""
    w, h = size
    im = Image.new("RGB", size, BLUE)
    im.paste(RED, (0, 0, w // 2, h // 2))
    return im


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def jpeg_bytes(im: Image.Image, **save_args: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **save_args)
    return buf.getvalue()


def is_red(pixel: np.ndarray) -> bool:
    r, g, b = (int(v) for v in pixel)
    return r > 200 and g < 60 and b < 60


def is_blue(pixel: np.ndarray) -> bool:
    r, g, b = (int(v) for v in pixel)
    return b > 200 and r < 60 and g < 60


def tiff_rgb16(path: Path, pixels: np.ndarray) -> None:
    """An uncompressed 16-bit RGB TIFF; Pillow cannot write one, so we do it by hand."""
    h, w, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    entries = [  # tag, type, count, value
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 3, None),  # BitsPerSample 16,16,16 stored after the IFD
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, None),  # StripOffsets: after the bits-per-sample values
        (277, 3, 1, 3),
        (278, 4, 1, h),
        (279, 4, 1, len(data)),
        (284, 3, 1, 1),
    ]
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    bps_offset = ifd_offset + ifd_size
    strip_offset = bps_offset + 6
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset))
    out += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 258:
            value = bps_offset
        elif tag == 273:
            value = strip_offset
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    out += struct.pack("<HHH", 16, 16, 16)
    out += data
    path.write_bytes(bytes(out))
