"""Motion photos: a JPEG still with a short MP4 clip appended (Google, Samsung).

Such a file is a photo to every viewer, so it is analysed as its still; we only
mark it (`kind="motion_photo"`) so search and the sidecar can say so. The clip
is found from bytes the decoder already holds, never by running ffmpeg:

* Google (Camera XMP "Motion Photo" format 1.0): `GCamera:MotionPhoto="1"` in the
  JPEG's XMP, with a `Container:Directory` whose `MotionPhoto` item gives the
  clip's `Item:Length` (and `Item:Padding`) counted back from the end of the file;
* Google's older "MicroVideo": `GCamera:MicroVideo="1"` and
  `GCamera:MicroVideoOffset`, the clip's distance from the end of the file;
* Samsung: the clip follows a `MotionPhoto_Data` marker after the JPEG (inside
  Samsung's SEF trailer); newer Samsung phones also write the Google XMP with
  the prefix `Camera:`.

The flag alone is not enough: editors keep the XMP but drop the clip, and such
a file is a plain photo. A clip counts when an MP4 `ftyp` box is where the
metadata says it is (or, failing that, anywhere after the XMP).
"""

from __future__ import annotations

import mmap
import re
import struct

#: The whole file, as the decoder holds it.
Data = bytes | bytearray | mmap.mmap

#: The XMP sits in an APP1 segment near the start; 256 KiB also covers a big EXIF.
_XMP_WINDOW = 256 * 1024
_FLAG_RE = re.compile(
    rb"""(?:GCamera|Camera):(?:MotionPhoto|MicroVideo)\s*=\s*["']1["']"""
    rb"""|<(?:GCamera|Camera):(?:MotionPhoto|MicroVideo)>\s*1\s*<"""
)
_MICRO_OFFSET_RE = re.compile(rb"""GCamera:MicroVideoOffset\s*=\s*["'](\d+)["']""")
_ITEM_RE = re.compile(rb"<Container:Item\b([^>]*)>", re.DOTALL)
_ATTR_RE = re.compile(rb"""Item:(\w+)\s*=\s*["']([^"']*)["']""")
_SAMSUNG_MARKER = b"MotionPhoto_Data"
_MP4_BRANDS = (b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"avc1", b"M4V ", b"3gp4", b"3gp5")


def find_motion_video(data: Data) -> tuple[int, int] | None:
    """(start, end) byte offsets of the clip embedded in a JPEG, or None.

    `data` is the whole file (bytes or an mmap). Returns None for plain photos,
    and for files that claim to be motion photos but carry no clip.
    """
    size = len(data)
    head = bytes(data[: min(size, _XMP_WINDOW)])
    flagged = _FLAG_RE.search(head) is not None
    if flagged:
        for start in _xmp_offsets(head, size):
            if _is_mp4_at(data, start):
                return start, size
    marker = data.rfind(_SAMSUNG_MARKER)
    if marker >= 0:
        start = marker + len(_SAMSUNG_MARKER)
        if _is_mp4_at(data, start):
            return start, _mp4_end(data, start)
    if flagged:
        last = _last_ftyp(data, 2)
        if last is not None:
            return last, size
    return None


def is_motion_photo(data: Data) -> bool:
    """True when `data` is a JPEG with a motion-photo clip in it."""
    return find_motion_video(data) is not None


def _xmp_offsets(head: bytes, size: int) -> list[int]:
    """Where the XMP says the clip starts (from the end of the file), best first."""
    out = []
    for item in _ITEM_RE.finditer(head):
        attrs = dict(_ATTR_RE.findall(item.group(1)))
        if attrs.get(b"Semantic") != b"MotionPhoto" or not attrs.get(b"Length", b"").isdigit():
            continue
        length = int(attrs[b"Length"])
        padding = int(attrs[b"Padding"]) if attrs.get(b"Padding", b"").isdigit() else 0
        out += [size - length, size - length - padding]
    micro = _MICRO_OFFSET_RE.search(head)
    if micro:
        out.append(size - int(micro.group(1)))
    return [start for start in out if 0 < start < size]


def _is_mp4_at(data: Data, start: int) -> bool:
    """An ISO-BMFF `ftyp` box with a video brand starts at `start`."""
    if start < 0 or start + 12 > len(data):
        return False
    (box_size,) = struct.unpack(">I", data[start : start + 4])
    return (
        bytes(data[start + 4 : start + 8]) == b"ftyp"
        and 8 <= box_size <= 256
        and bytes(data[start + 8 : start + 12]) in _MP4_BRANDS
    )


def _mp4_end(data: Data, start: int) -> int:
    """End of the MP4 that starts at `start`: walk its top-level boxes (a Samsung
    trailer goes on after the clip)."""
    pos, size = start, len(data)
    while pos + 8 <= size:
        (box_size,) = struct.unpack(">I", data[pos : pos + 4])
        kind = bytes(data[pos + 4 : pos + 8])
        if box_size == 1 and pos + 16 <= size:
            (box_size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        elif box_size == 0:
            return size
        if box_size < 8 or not kind.isascii() or pos + box_size > size:
            break
        pos += box_size
    return pos


def _last_ftyp(data: Data, after: int) -> int | None:
    """Start of the last plausible `ftyp` box past `after` (a clip whose place the
    XMP does not give)."""
    i = data.rfind(b"ftyp")
    while i >= 4 and i - 4 >= after:
        if _is_mp4_at(data, i - 4):
            return i - 4
        i = data.rfind(b"ftyp", 0, i)
    return None
