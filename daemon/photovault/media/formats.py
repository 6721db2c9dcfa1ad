"""Which files Photo Vault treats as photos and videos, decided by file name alone.

The watcher and the reconcile scan call `is_supported` for every file they see,
so it must not touch the disk. The decoder sniffs the content afterwards: a PNG
saved as `.jpg` still decodes, and a text file named `.jpg` fails with a clear
reason instead of being skipped silently.
"""

from __future__ import annotations

from os import PathLike

#: Formats decoded by Pillow (JPEG, PNG, WebP, TIFF, GIF, AVIF) or pillow-heif (HEIC/HEIF).
RASTER_EXTENSIONS: frozenset[str] = frozenset(
    {"jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "gif", "heic", "heif", "avif"}
)

#: Camera RAW files; we decode their embedded JPEG preview, never the sensor data.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {"dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "pef", "srw"}
)

#: Video containers, decoded through ffmpeg (sampled frames, never every frame).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {"mp4", "mov", "m4v", "mkv", "avi", "3gp", "3g2", "webm", "mts", "m2ts", "mpg", "mpeg", "wmv"}
)

#: Every extension we accept, lower case and without the dot.
SUPPORTED_EXTENSIONS: frozenset[str] = RASTER_EXTENSIONS | RAW_EXTENSIONS | VIDEO_EXTENSIONS


def extension_of(path: str | PathLike[str]) -> str:
    """The lower-case extension without the dot ("" when there is none).

    `Path.suffix` would do, but callers pass plain strings from watchdog events
    too, and a dot-file such as `.jpg` has no extension, only a name.
    """
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return ""
    return ext.lower()


def is_supported(path: str | PathLike[str]) -> bool:
    """True when the file name has an extension we decode (case-insensitive)."""
    return extension_of(path) in SUPPORTED_EXTENSIONS


def is_raw(path: str | PathLike[str]) -> bool:
    """True for camera RAW extensions, which decode through their embedded preview."""
    return extension_of(path) in RAW_EXTENSIONS


def is_video(path: str | PathLike[str]) -> bool:
    """True for video container extensions, which decode through ffmpeg."""
    return extension_of(path) in VIDEO_EXTENSIONS
