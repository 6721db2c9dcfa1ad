"""Camera RAW files, read through the JPEG previews the camera embedded in them.

We never demosaic sensor data: the analyzers want a 224-px picture, and every
RAW format we list carries at least one camera-rendered JPEG (often a full-size
one), already white-balanced the way the photographer saw it on the camera.

How the previews are found, and why this way
--------------------------------------------
We scan the bytes for JPEG start markers (FF D8 FF) and, for each hit, walk the
JPEG marker segments up to the first scan (SOS) to learn its size, then take the
first end marker (FF D9) after it. This one routine covers every container we
support - TIFF-based ones (DNG, CR2, NEF, ARW, ORF, RW2, PEF, SRW), Canon's
ISO-BMFF CR3 and Fuji's RAF - with no per-maker table of IFDs and maker-note
offsets to keep up to date. Random look-alike markers inside sensor data are
rejected because a real JPEG needs a valid chain of length-prefixed segments, a
frame header with a plausible size and a scan header. Lossless frames (SOF3,
which CR2 and many DNGs use for the sensor data itself) are skipped on purpose.
`bytes.find` over a 50 MB buffer takes a few milliseconds, and the pipeline
already holds the file in memory to hash it.

The alternative, exiftool's `-b -PreviewImage` / `-JpgFromRaw`, costs a round
trip through a stay-open exiftool per file and streams megabytes of binary
through its pipe; inside decode worker processes it would mean one more
long-lived exiftool per worker. The scan needs nothing outside this process.

The TIFF header of the RAW (or the CMT1/CMT2 boxes of a CR3) still tells us the
orientation and, where the camera records it, the full image size; those few
IFD reads are done here by hand for the same reasons.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from mmap import mmap

log = logging.getLogger(__name__)

Buffer = bytes | bytearray | mmap

_SOI = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"
# Frame headers libjpeg can decode: baseline, extended, progressive (Huffman or
# arithmetic). Lossless (C3, C7, CB, CF) is what RAW sensor data uses; hierarchical
# frames are not supported by libjpeg.
_DECODABLE_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC9, 0xCA})
_ANY_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MAX_SEGMENTS = 128  # real JPEG headers have a dozen; a long chain means garbage

_TAG_ORIENTATION = 0x0112
_TAG_EXIF_IFD = 0x8769
_TAG_SUBIFDS = 0x014A
_TAG_NEW_SUBFILE_TYPE = 0x00FE
_TAG_IMAGE_WIDTH = 0x0100
_TAG_IMAGE_LENGTH = 0x0101
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


@dataclass(frozen=True)
class EmbeddedJpeg:
    """One complete JPEG stream inside a RAW file (offset and length in bytes)."""

    offset: int
    length: int
    width: int
    height: int

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class RawInfo:
    """What the RAW container says about the full image (None when it does not say)."""

    orientation: int | None = None
    size: tuple[int, int] | None = None  # stored (un-rotated) width, height


def find_embedded_jpegs(buf: Buffer) -> list[EmbeddedJpeg]:
    """Every decodable JPEG stream in `buf`, in file order.

    A stream nested inside another (the EXIF thumbnail in a preview's APP1) is
    skipped along with its host: the host is always the larger, better choice.
    """
    found: list[EmbeddedJpeg] = []
    pos = buf.find(_SOI)
    while pos != -1:
        jpeg = _parse_jpeg_at(buf, pos)
        if jpeg is not None:
            found.append(jpeg)
            pos = buf.find(_SOI, jpeg.end)
        else:
            pos = buf.find(_SOI, pos + 3)
    return found


def _parse_jpeg_at(buf: Buffer, start: int) -> EmbeddedJpeg | None:
    """Walk the marker segments of a JPEG starting at `start`; None if it is not one."""
    n = len(buf)
    pos = start + 2
    size: tuple[int, int] | None = None
    for _ in range(_MAX_SEGMENTS):
        if pos + 4 > n or buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            return None  # no standalone markers belong in a header
        (seg_len,) = struct.unpack_from(">H", buf, pos + 2)
        if seg_len < 2 or pos + 2 + seg_len > n:
            return None
        if marker in _ANY_SOF:
            if marker not in _DECODABLE_SOF or seg_len < 8:
                return None
            height, width = struct.unpack_from(">HH", buf, pos + 5)
            if not width or not height:
                return None
            size = (width, height)
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                return None
            end = buf.find(_EOI, pos + 2 + seg_len)
            if end == -1:
                return None
            return EmbeddedJpeg(start, end + 2 - start, size[0], size[1])
        pos += 2 + seg_len
    return None


def pick_preview(
    jpegs: Sequence[EmbeddedJpeg],
    target_side: int,
    full_size: tuple[int, int] | None = None,
) -> EmbeddedJpeg | None:
    """The cheapest preview that still has a long side >= `target_side`.

    We take the smallest one that is big enough rather than the largest: the
    result is scaled to `target_side` anyway, and a 1620-px preview decodes
    several times faster than a 6000-px one. When none is big enough, the
    largest wins (we never upscale, the caller gets fewer pixels). Previews
    whose aspect ratio differs from the full image's by more than 2 % are
    letterboxed thumbnails (Nikon's and Canon's 160x120) and are avoided.
    """
    candidates = list(jpegs)
    if full_size is not None:
        same_shape = [j for j in candidates if same_aspect((j.width, j.height), full_size)]
        candidates = same_shape or candidates
    if not candidates:
        return None
    big_enough = [j for j in candidates if j.long_side >= target_side]
    if big_enough:
        return min(big_enough, key=lambda j: j.width * j.height)
    return max(candidates, key=lambda j: j.width * j.height)


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when two (width, height) sizes have the same shape within 2 %."""
    ra = max(a) / max(1, min(a))
    rb = max(b) / max(1, min(b))
    same_way = (a[0] >= a[1]) == (b[0] >= b[1]) or a[0] == a[1] or b[0] == b[1]
    return same_way and abs(ra - rb) <= 0.02 * rb


def read_raw_info(buf: Buffer) -> RawInfo:
    """Orientation and full image size from the RAW container, as far as it records them.

    TIFF-based RAWs: IFD0's Orientation, the Exif IFD's PixelX/YDimension, else
    (DNG) the full-resolution sub-IFD's width and length. CR3: the same tags in
    its CMT1 (IFD0) and CMT2 (Exif) boxes. RAF and anything unusual: nothing,
    the caller falls back to the preview's own EXIF.
    """
    try:
        if buf[4:8] == b"ftyp" and buf[8:12] == b"crx ":
            return _read_cr3_info(buf)
        if buf[:2] in (b"II", b"MM"):
            return _read_tiff_info(buf, 0)
    except (struct.error, IndexError, ValueError) as exc:
        log.debug("unreadable RAW header: %s", exc)
    return RawInfo()


def _read_cr3_info(buf: Buffer) -> RawInfo:
    head_end = min(len(buf), 1 << 20)  # the metadata boxes sit in the first few kB
    orientation = None
    size = None
    cmt1 = buf.find(b"CMT1", 0, head_end)
    if cmt1 != -1:
        orientation = _read_tiff_info(buf, cmt1 + 4).orientation
    cmt2 = buf.find(b"CMT2", 0, head_end)
    if cmt2 != -1:
        tiff = _Tiff(buf, cmt2 + 4)
        entries = tiff.ifd(tiff.first_ifd())
        size = _pixel_dims(tiff, entries)
    return RawInfo(orientation, size)


def _read_tiff_info(buf: Buffer, base: int) -> RawInfo:
    tiff = _Tiff(buf, base)
    ifd0 = tiff.ifd(tiff.first_ifd())
    orientation = tiff.value(ifd0.get(_TAG_ORIENTATION))
    if orientation not in range(1, 9):
        orientation = None
    size = None
    if _TAG_EXIF_IFD in ifd0:
        exif_offset = tiff.value(ifd0[_TAG_EXIF_IFD])
        if exif_offset:
            size = _pixel_dims(tiff, tiff.ifd(exif_offset))
    if size is None and _TAG_SUBIFDS in ifd0:
        for offset in tiff.values(ifd0[_TAG_SUBIFDS])[:8]:
            sub = tiff.ifd(offset)
            if tiff.value(sub.get(_TAG_NEW_SUBFILE_TYPE)) == 0:  # full-resolution image
                w = tiff.value(sub.get(_TAG_IMAGE_WIDTH))
                h = tiff.value(sub.get(_TAG_IMAGE_LENGTH))
                if w and h:
                    size = (w, h)
                    break
    return RawInfo(orientation, size)


def _pixel_dims(tiff: _Tiff, entries: dict[int, tuple[int, int, int]]) -> tuple[int, int] | None:
    w = tiff.value(entries.get(_TAG_PIXEL_X))
    h = tiff.value(entries.get(_TAG_PIXEL_Y))
    return (w, h) if w and h else None


class _Tiff:
    """Just enough of a TIFF reader for a few integer tags; offsets relative to `base`.

    The version word after the byte-order mark is not checked: ORF ("RO"/"RS")
    and RW2 (0x55) use their own values with the ordinary IFD layout.
    """

    def __init__(self, buf: Buffer, base: int) -> None:
        order = buf[base : base + 2]
        if order not in (b"II", b"MM"):
            raise ValueError("no TIFF byte-order mark")
        self.buf = buf
        self.base = base
        self.e = "<" if order == b"II" else ">"

    def first_ifd(self) -> int:
        (offset,) = struct.unpack_from(self.e + "I", self.buf, self.base + 4)
        return int(offset)

    def ifd(self, offset: int) -> dict[int, tuple[int, int, int]]:
        """{tag: (type, count, absolute offset of the value field)} of one IFD."""
        at = self.base + offset
        (count,) = struct.unpack_from(self.e + "H", self.buf, at)
        entries = {}
        for i in range(min(count, 512)):
            entry = at + 2 + 12 * i
            tag, typ, n = struct.unpack_from(self.e + "HHI", self.buf, entry)
            entries[tag] = (typ, n, entry + 8)
        return entries

    def values(self, entry: tuple[int, int, int] | None) -> list[int]:
        """The integer values of an IFD entry (SHORT, LONG, IFD; others give [])."""
        if entry is None:
            return []
        typ, n, field = entry
        fmt = {3: "H", 4: "I", 13: "I"}.get(typ)
        if fmt is None:
            return []
        size = _TYPE_SIZES[typ] * n
        at = field
        if size > 4:
            (pointer,) = struct.unpack_from(self.e + "I", self.buf, field)
            at = self.base + pointer
        return list(struct.unpack_from(self.e + fmt * min(n, 64), self.buf, at))

    def value(self, entry: tuple[int, int, int] | None) -> int | None:
        vals = self.values(entry)
        return vals[0] if vals else None
