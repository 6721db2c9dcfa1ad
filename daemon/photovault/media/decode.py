"""Turn a photo file into small upright RGB pixels for the analyzers, fast.

Decoding is the most expensive CPU step before inference (see MEASUREMENTS.md),
so every path here avoids producing pixels nobody looks at:

* JPEG: libjpeg's DCT scaling (`Image.draft`) decodes at 1/2, 1/4 or 1/8 scale
  directly - 35 ms instead of 146 ms for a 12-MP photo at 224 px.
* HEIC/HEIF: the embedded thumbnail when it is big enough (7 ms instead of 604).
* RAW: the camera's embedded JPEG preview (see `photovault.media.raw`).
* Motion photos (a JPEG with a clip appended) decode as their still, marked
  `kind="motion_photo"` (see `photovault.media.motionphoto`).
* Orientation: we read the EXIF tag and transpose the *small* result, since
  `ImageOps.exif_transpose` copies the full image (31 ms at 12 MP).

Every failure becomes a `MediaError` with a reason a person can act on. Image
dimensions are checked against `DecodeLimits` after the header is parsed and
before a single pixel is decoded, so a 20-kB PNG claiming 100000x100000 costs
nothing. Truncated files fail: `ImageFile.LOAD_TRUNCATED_IMAGES` stays False
and we force a full load.

This module is safe to call from any process; the pipeline runs it in a
spawn-context process pool (fork deadlocks once libheif threads exist).
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pillow_heif
from PIL import Image, ImageFile

from photovault.media import motionphoto, raw
from photovault.media.formats import is_raw
from photovault.media.types import DecodedImage, MediaError

log = logging.getLogger(__name__)

# HEIF comes from pillow-heif; AVIF has been decoded by Pillow itself since 11.3
# (pillow-heif 1.x dropped it). Registering is idempotent and cheap.
pillow_heif.register_heif_opener(thumbnails=True)

_HEAD_BYTES = 512
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_VIDEO_BRANDS = frozenset({b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V ", b"3gp4", b"3gp5"})
_DISPLAY_NAMES = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "WebP",
    "TIFF": "TIFF",
    "HEIF": "HEIF",
    "AVIF": "AVIF",
    "RAW": "RAW",
}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)


@dataclass(frozen=True)
class DecodeLimits:
    """Refuse images whose header promises more pixels than a photo plausibly has.

    100 megapixels admits every camera on sale (the largest are 61 MP bodies and
    100-150 MP medium format owners can raise it); a forged header asking for
    more would make us allocate gigabytes. `max_side` also catches 1 x 10^9 strips.
    """

    max_pixels: int = 100_000_000
    max_side: int = 65_000


def decode_image(
    path: Path,
    target_side: int,
    *,
    data: bytes | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> DecodedImage:
    """Decode `path` to upright RGB pixels whose long side is `target_side` (never upscaled).

    `data`, when given, is the file's content already read by the caller (the
    pipeline reads each file once to hash it); the file is then not opened
    again. `path` still names the file in errors and its extension tells RAW
    files apart from plain TIFFs.

    Raises `MediaError` with a human reason for anything we cannot decode.
    """
    path = Path(path)
    if target_side < 1:
        raise ValueError(f"target_side must be positive, got {target_side}")
    try:
        if data is not None:
            if len(data) == 0:
                raise MediaError(path, "empty file (0 bytes)")
            return _decode_source(path, io.BytesIO(data), data, target_side, limits)
        with _open_file(path) as fh:
            return _decode_source(path, fh, None, target_side, limits)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:  # from a plugin's own check
        raise MediaError(path, f"decompression bomb: {exc}") from None
    except MemoryError:
        raise MediaError(path, "out of memory while decoding") from None


def _open_file(path: Path) -> BinaryIO:
    """Open a regular, non-empty file, or say in plain words why not.

    The stat comes first so that a FIFO in the photo share is refused instead
    of blocking this worker forever in open().
    """
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise MediaError(path, "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise MediaError(path, "not a regular file (a FIFO, socket or device)")
        if st.st_size == 0:
            raise MediaError(path, "empty file (0 bytes)")
        return open(path, "rb")
    except FileNotFoundError:
        raise MediaError(path, "file not found (deleted or moved?)") from None
    except PermissionError:
        raise MediaError(path, "permission denied") from None
    except IsADirectoryError:
        raise MediaError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise MediaError(path, f"cannot read file: {exc.strerror or exc}") from None


def _decode_source(
    path: Path,
    fp: BinaryIO,
    data: bytes | None,
    target_side: int,
    limits: DecodeLimits,
) -> DecodedImage:
    head = fp.read(_HEAD_BYTES)
    fp.seek(0)
    if not head:
        raise MediaError(path, "empty file (0 bytes)")
    fmt = sniff_format(head, raw_name=is_raw(path))
    if fmt is None:
        raise MediaError(path, describe_non_image(head))
    if fmt == "RAW":
        if data is not None:
            return _decode_raw(path, data, target_side, limits)
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _decode_raw(path, buf, target_side, limits)
    decoded = _decode_pil(path, fp, fmt, target_side, limits)
    if fmt == "JPEG":
        # A motion photo is analysed as its still; the mark tells search and sidecars.
        if data is not None:
            found = motionphoto.is_motion_photo(data)
        else:
            with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                found = motionphoto.is_motion_photo(buf)
        if found:
            decoded.kind = "motion_photo"
    return decoded


def sniff_format(head: bytes, *, raw_name: bool = False) -> str | None:
    """The format id of a file from its first bytes, or None when it is not one of ours.

    Content decides, not the extension: phones and chat apps routinely save
    PNGs or HEICs as `.jpg`. The extension only matters for TIFF-structured
    files, which are RAW (decode the preview) when named like a RAW.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"FUJIFILMCCD-RAW") or head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00"):
        return "RAW"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "RAW" if raw_name or head[8:10] == b"CR" else "TIFF"
    if head[4:8] == b"ftyp":
        return _sniff_isobmff(head)
    return None


def _sniff_isobmff(head: bytes) -> str | None:
    (box_size,) = struct.unpack_from(">I", head, 0)
    major = head[8:12]
    if major == b"crx ":
        return "RAW"
    compatible = {head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)}
    brands = {major} | compatible
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if major in _HEIF_BRANDS or brands & {b"heic", b"heix"}:
        return "HEIF"
    return None


def describe_non_image(head: bytes) -> str:
    """A reason for a file that is none of our formats, naming what it looks like."""
    if head.startswith(b"%PDF"):
        return "not an image (a PDF document)"
    if head.startswith(b"PK\x03\x04"):
        return "not an image (a ZIP archive)"
    if head[4:8] == b"ftyp" and head[8:12] in _VIDEO_BRANDS:
        return "not an image (looks like a video)"
    if _looks_like_text(head):
        lowered = head[:200].lstrip().lower()
        if lowered.startswith((b"<!doctype html", b"<html")):
            return "not an image (looks like an HTML page)"
        return "not an image (looks like text)"
    return f"unsupported format (unrecognised signature {head[:4].hex(' ')})"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > 3:  # allow a multi-byte character cut at the end
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


def _check_limits(path: Path, size: tuple[int, int], limits: DecodeLimits, fmt: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise MediaError(path, f"corrupt {_DISPLAY_NAMES[fmt]} header (size {w}x{h})")
    if w * h > limits.max_pixels:
        raise MediaError(
            path,
            f"decompression bomb: {w}x{h} exceeds the {limits.max_pixels / 1e6:g}-megapixel limit",
        )
    if w > limits.max_side or h > limits.max_side:
        raise MediaError(
            path, f"decompression bomb: {w}x{h} exceeds the {limits.max_side}-pixel side limit"
        )


def _open_pil(path: Path, fp: BinaryIO, fmt: str) -> ImageFile.ImageFile:
    """Parse the header with the one plugin the content calls for.

    We call the plugin factory from Pillow's registry instead of `Image.open`
    so that our own `DecodeLimits` decide, with a message that gives the size:
    `Image.open` applies Pillow's process-wide MAX_IMAGE_PIXELS first (a warning
    at 89 MP, an error at 179 MP). Naming the plugin also keeps exotic decoders
    (EPS runs Ghostscript) away from files in a shared folder.
    """
    Image.init()
    factory, _accept = Image.OPEN[fmt]
    fp.seek(0)
    try:
        im = factory(fp, str(path))
    except _PIL_ERRORS as exc:
        name = _DISPLAY_NAMES[fmt]
        if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
            raise MediaError(path, f"truncated {name} (the file ends inside its header)") from None
        raise MediaError(path, f"corrupt {name} header: {exc}") from None
    assert isinstance(im, ImageFile.ImageFile)
    return im


def _decode_pil(
    path: Path,
    fp: BinaryIO,
    fmt: str,
    target_side: int,
    limits: DecodeLimits,
    orientation: int | None = None,
) -> DecodedImage:
    """Decode with Pillow; `orientation`, when given, overrides the file's EXIF tag."""
    im = _open_pil(path, fp, fmt)
    try:
        _check_limits(path, im.size, limits, fmt)
        stored_size = im.size
        if fmt == "HEIF":
            # libheif has already applied the container's rotation and mirroring
            # (irot/imir), so the size and the pixels are upright.
            orientation = _heif_orientation(im)
            if orientation in (5, 6, 7, 8):
                stored_size = (stored_size[1], stored_size[0])
        source = _apply_draft(im, fmt, target_side)
        _load(path, im, fmt)
        if fmt != "HEIF" and orientation is None:
            orientation = _valid_orientation(im.getexif().get(0x0112))
        assert orientation is not None
        small = _resize(_to_rgb(im), target_side)
        if fmt != "HEIF":
            small = _transpose(small, orientation)
        return DecodedImage(np.array(small, dtype=np.uint8), stored_size, orientation, source)
    finally:
        im.close()


def _apply_draft(im: ImageFile.ImageFile, fmt: str, target_side: int) -> str:
    """Ask the decoder for the smallest scale whose long side is still >= target_side."""
    w, h = im.size
    if fmt not in ("JPEG", "HEIF") or max(w, h) <= target_side:
        return "full"
    # Only the long side must reach target_side: a (target, 1) request lets a
    # panorama use 1/8 scale where a square request would be held back by its
    # short side.
    request = (target_side, 1) if w >= h else (1, target_side)
    if im.draft("RGB", request) is None:
        return "full"
    if fmt == "HEIF":
        return "heif-thumbnail"
    scale = round(max(w, h) / max(im.size))
    return "full" if scale <= 1 else f"draft-1/{scale}"


def _load(path: Path, im: ImageFile.ImageFile, fmt: str) -> None:
    name = _DISPLAY_NAMES[fmt]
    try:
        im.load()
    except Image.DecompressionBombError:
        raise
    except _PIL_ERRORS as exc:
        text = str(exc)
        if "truncated" in text or isinstance(exc, EOFError):
            raise MediaError(path, f"truncated {name} (the file ends early)") from None
        raise MediaError(path, f"corrupt {name} data: {text}") from None


# Each EXIF orientation as the numpy operation that turns stored pixels upright.
_ORIENTATION_OPS = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).T,
    8: lambda a: np.rot90(a, 1),
}


def _heif_orientation(im: Image.Image) -> int:
    """The EXIF orientation code equal to the irot/imir transforms libheif applied.

    In HEIF the container's transforms, not the EXIF tag, decide how a picture
    is shown; the two agree in iPhone files, but some writers leave EXIF saying 6
    with no irot. We report what was actually done to the pixels, so the sidecar
    stage maps boxes back to the stored frame correctly. pillow-heif exposes the
    transforms only on its private image object; if that changes we fall back to
    the EXIF tag, which pillow-heif assumes was applied.
    """
    try:
        transforms = im._heif_file[im.tell()]._c_image.transformations  # type: ignore[attr-defined]
    except (AttributeError, IndexError, TypeError):
        return _valid_orientation(im.info.get("original_orientation"))
    probe = np.arange(6).reshape(2, 3)
    result = probe
    for name, *args in transforms:
        if name == "irot":
            result = np.rot90(result, int(args[0]) // 90)  # irot angles are counter-clockwise
        elif name == "imir":
            result = np.fliplr(result) if args[0] == 1 else np.flipud(result)
    for code, op in _ORIENTATION_OPS.items():
        candidate = op(probe)
        if candidate.shape == result.shape and np.array_equal(candidate, result):
            return code
    return 1


def _valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB uint8, whatever the stored mode: palette, alpha, 16-bit, float, CMYK.

    Transparent areas become white, as a viewer on a white page shows them.
    16-bit data keeps its high byte; Pillow's own convert would clip it to 255.
    """
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        if mode == "I" and arr.max(initial=0) <= 255:
            arr8 = np.clip(arr, 0, 255).astype(np.uint8)
        else:
            arr8 = (np.clip(arr, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _resize(im: Image.Image, target_side: int) -> Image.Image:
    """Scale so the long side is exactly target_side; never upscale.

    Lanczos on the already-small draft output costs about a millisecond;
    `reducing_gap` first box-reduces big non-JPEG images, which is what keeps a
    full 12-MP PNG from taking 100 ms here.
    """
    w, h = im.size
    long_side = max(w, h)
    if long_side <= target_side:
        return im
    if w >= h:
        size = (target_side, max(1, round(h * target_side / w)))
    else:
        size = (max(1, round(w * target_side / h)), target_side)
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _transpose(im: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


def _decode_raw(
    path: Path, buf: bytes | mmap.mmap, target_side: int, limits: DecodeLimits
) -> DecodedImage:
    """Decode a RAW file's best embedded JPEG preview; see `photovault.media.raw`."""
    info = raw.read_raw_info(buf)
    jpegs = raw.find_embedded_jpegs(buf)
    preview = raw.pick_preview(jpegs, target_side, info.size)
    if preview is None:
        raise MediaError(path, "RAW file without an embedded JPEG preview (cannot decode)")
    jpeg_bytes = bytes(buf[preview.offset : preview.end])
    try:
        # The RAW's IFD0 orientation is authoritative; without one (RAF) the
        # preview's own EXIF decides.
        decoded = _decode_pil(
            path, io.BytesIO(jpeg_bytes), "JPEG", target_side, limits, info.orientation
        )
    except MediaError as exc:
        raise MediaError(path, f"RAW preview unreadable: {exc.reason}") from None
    if info.size is not None:
        stored_size = info.size
    else:
        # No size in the container: the largest preview of the same shape is the
        # best estimate (NEF, ARW and CR2 embed a full-size one).
        shape = (preview.width, preview.height)
        same = [j for j in jpegs if raw.same_aspect((j.width, j.height), shape)]
        largest = max(same or [preview], key=lambda j: j.width * j.height)
        stored_size = (largest.width, largest.height)
    source = "raw-preview" if decoded.source == "full" else f"raw-preview-{decoded.source}"
    return DecodedImage(decoded.pixels, stored_size, decoded.orientation, source)
