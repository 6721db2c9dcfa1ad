"""Builders for small test photos: every input is generated at test time, no blobs."""

from __future__ import annotations

import io
import struct
import zlib
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


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_claiming_size(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims width x height: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def tiff_header(ifd0: dict[int, int], exif: dict[int, int] | None = None) -> bytes:
    """A little-endian TIFF header with one-value SHORT/LONG tags (Orientation etc.).

    With `exif`, IFD0 gets an Exif IFD pointer (0x8769) to a second IFD holding
    those tags. Enough to stand in for the first bytes of a TIFF-based RAW.
    """

    def ifd(tags: dict[int, int], at: int) -> bytes:
        out = struct.pack("<H", len(tags))
        for tag, value in sorted(tags.items()):
            if tag in (0x0112,):
                out += struct.pack("<HHIHH", tag, 3, 1, value, 0)
            else:
                out += struct.pack("<HHII", tag, 4, 1, value)
        return out + struct.pack("<I", 0)

    tags = dict(ifd0)
    n0 = len(tags) + (1 if exif else 0)
    exif_at = 8 + 2 + 12 * n0 + 4
    if exif:
        tags[0x8769] = exif_at
    body = ifd(tags, 8)
    if exif:
        body += ifd(exif, exif_at)
    return b"II*\x00" + struct.pack("<I", 8) + body


def lossless_jpeg_lookalike() -> bytes:
    """The start of a lossless (SOF3) JPEG, as RAW sensor data is stored: not a preview."""
    sof3 = b"\xff\xc3" + struct.pack(">HBHHB", 11, 14, 2000, 3000, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + sof3 + sos + bytes(range(256)) * 8 + b"\xff\xd9"


def fake_raw(orientation: int = 6, full_size: tuple[int, int] | None = (3000, 2000)) -> bytes:
    """A TIFF-structured RAW: header, sensor-data look-alike, junk and three JPEGs.

    The JPEGs are a letterboxed 4:3 160x120 thumbnail, a 600x400 preview and a
    1500x1000 preview, all with the red top-left quadrant and no EXIF of their own.
    """
    exif = {0xA002: full_size[0], 0xA003: full_size[1]} if full_size else None
    header = tiff_header({0x0112: orientation}, exif)
    junk = b"\x00\xff\xd8\xff\x10garbage\xff\xd8\xff\xe0\x00\x02\xff\xd9" * 4
    parts = [
        header,
        bytes(64),
        jpeg_bytes(Image.new("RGB", (160, 120), (0, 0, 0))),
        lossless_jpeg_lookalike(),
        junk,
        jpeg_bytes(quadrant_image((600, 400))),
        bytes(100),
        jpeg_bytes(quadrant_image((1500, 1000))),
        bytes(32),
    ]
    return b"".join(parts)


def fake_cr3(orientation: int, full_size: tuple[int, int]) -> bytes:
    """An ISO-BMFF CR3 look-alike: ftyp crx, CMT1 (IFD0) and CMT2 (Exif) boxes, a preview."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    cmt1 = tiff_header({0x0112: orientation})
    cmt2 = tiff_header({0xA002: full_size[0], 0xA003: full_size[1]})
    return (
        box(b"ftyp", b"crx \x00\x00\x00\x01crx isom")
        + box(b"moov", box(b"CMT1", cmt1) + box(b"CMT2", cmt2))
        + box(b"mdat", jpeg_bytes(quadrant_image((600, 400))))
    )
