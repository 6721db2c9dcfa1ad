"""Value types that leave the media stage: decoded pixels, video frames and metadata.

They are plain dataclasses so they pickle cheaply between the decode processes
and the analyzer thread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class MediaError(Exception):
    """A photo that cannot be read or decoded; `reason` is shown to the user as is."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (MediaError, (self.path, self.reason))


@dataclass
class VideoFrame:
    """One sampled frame of a video: upright RGB uint8 pixels (long side about the
    working size) and its presentation time in seconds from the start."""

    at: float
    pixels: np.ndarray


@dataclass
class DecodedImage:
    """Pixels ready for analyzers.

    `pixels` is RGB uint8, shape (H, W, 3), already turned upright by the EXIF
    orientation and scaled so its long side is about the requested working
    size (never upscaled). `stored_size` is (width, height) of the full image
    as stored in the file, before orientation: the sidecar stage needs it to
    convert boxes into MWG's un-rotated frame.
    """

    pixels: np.ndarray
    stored_size: tuple[int, int]
    orientation: int = 1
    source: str = "full"  # how it was decoded: full, draft-1/8, heif-thumbnail, raw-preview ...
    #: "photo", "video" or "motion_photo" (a still with an embedded clip, analyzed as the still).
    kind: str = "photo"
    #: Seconds, for videos.
    duration: float | None = None
    #: The sampled frames of a video, in time order (None for photos). `pixels` is then
    #: the first of them, so code that wants one picture of the item has one.
    frames: list[VideoFrame] | None = None

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) of the full image once turned upright."""
        w, h = self.stored_size
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)


@dataclass
class PhotoMetadata:
    """What exiftool tells us about a photo; every field may be unknown."""

    taken_at: str | None = None  # ISO 8601, with UTC offset when the file records one
    gps_lat: float | None = None
    gps_lon: float | None = None
    camera: str | None = None  # "Make Model", de-duplicated
    lens: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    mime: str | None = None
    duration: float | None = None  # seconds, for videos
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
