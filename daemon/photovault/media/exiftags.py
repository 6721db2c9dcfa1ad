"""From exiftool's answer to our facts: the tags we ask for and how each is read.

Pure functions (no process, no I/O), so the quirks of makers' tags (offsets,
sub-seconds, numeric Model names, signed GPS composites) are tested on their
own; media/metadata.py runs exiftool and hands each row here.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from photovault.media.formats import is_video
from photovault.media.types import MediaError, PhotoMetadata

#: Tags we ask for, and nothing else: every extra tag costs time in a batch.
TAGS: tuple[str, ...] = (
    "SubSecDateTimeOriginal",
    "DateTimeOriginal",
    "CreateDate",
    "OffsetTimeOriginal",
    "OffsetTimeDigitized",
    "OffsetTime",
    "GPSLatitude",  # the Composite tag wins without -G: signed with -n
    "GPSLongitude",
    "GPSAltitude",
    "Make",
    "Model",
    "LensModel",
    "LensID",
    "Lens",
    "ImageSize",
    "ImageWidth",
    "ImageHeight",
    "Orientation",
    "MIMEType",
    "FocalLength",
    "FNumber",
    "ExposureTime",
    "ISO",
    # Videos (QuickTime/MP4, Matroska, AVI); see `_video_metadata`.
    "CreationDate",  # Apple's Keys:CreationDate, local time with its offset
    "ContentCreateDate",  # `©day` (UserData, ItemList): Android, cameras; often with offset
    "MediaCreateDate",
    "Duration",
    "Rotation",  # the display matrix, clockwise degrees
    "AndroidManufacturer",  # Keys com.android.manufacturer / .model
    "AndroidModel",
    "ContentIdentifier",  # Apple: pairs a Live Photo's still and video
    "Error",
)
_EXTRA_TAGS = ("FocalLength", "FNumber", "ExposureTime", "ISO", "GPSAltitude")
_DATE_RE = re.compile(
    r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?(\.\d+)?\s*"
    r"(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_OFFSET_RE = re.compile(r"^\s*(Z|[+-]\d{2}:?\d{2})\s*$")
_CLOCK_RE = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")
#: Containers of the QuickTime family, whose header dates are UTC by specification.
_QUICKTIME_MIMES = frozenset(
    {"video/mp4", "video/quicktime", "video/3gpp", "video/3gpp2", "video/x-m4v"}
)


def to_metadata(path: Path, row: dict[str, Any]) -> PhotoMetadata | MediaError:
    error = row.get("Error")
    if error:
        return MediaError(path, f"exiftool: {error}")
    mime = _text(row.get("MIMEType"))
    if mime is not None and mime.startswith("video/"):
        return _video_metadata(row, mime)
    if mime is not None and not mime.startswith("image/"):
        return MediaError(path, f"not {'a video' if is_video(path) else 'an image'} ({mime})")
    width, height = _size(row)
    lat, lon = _gps(row)
    orientation = row.get("Orientation")
    return PhotoMetadata(
        taken_at=taken_at(row),
        gps_lat=lat,
        gps_lon=lon,
        camera=camera_name(_text(row.get("Make")), _text(row.get("Model"))),
        lens=_lens(row),
        width=width,
        height=height,
        orientation=orientation if isinstance(orientation, int) else None,
        mime=mime,
        extra={tag: row[tag] for tag in _EXTRA_TAGS if isinstance(row.get(tag), int | float)},
    )


def _text(value: object) -> str | None:
    """exiftool's JSON turns numeric-looking strings (a Model "1000") into numbers."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).replace("\x00", "").strip()
    return text or None


def taken_at(row: dict[str, Any]) -> str | None:
    """ISO 8601 capture time: with its UTC offset when the file records one.

    Sources in order of trust: SubSecDateTimeOriginal (exiftool's composite of
    the time, sub-seconds and offset), DateTimeOriginal, then CreateDate (when the
    picture was digitised, the same moment for a digital camera). The offset
    comes from the value itself, else OffsetTimeOriginal / OffsetTimeDigitized /
    OffsetTime. Fractions of a second are kept: bursts sort correctly.
    """
    candidates = (
        ("SubSecDateTimeOriginal", ("OffsetTimeOriginal", "OffsetTime")),
        ("DateTimeOriginal", ("OffsetTimeOriginal", "OffsetTime")),
        ("CreateDate", ("OffsetTimeDigitized", "OffsetTime")),
    )
    for tag, offset_tags in candidates:
        value = _text(row.get(tag))
        if value is None:
            continue
        offsets = (_text(row.get(t)) for t in offset_tags)
        iso = iso_datetime(value, next((o for o in offsets if o), None))
        if iso is not None:
            return iso
    return None


def iso_datetime(value: str, offset: str | None = None) -> str | None:
    """'2024:07:01 14:03:22' + '+02:00' -> '2024-07-01T14:03:22+02:00'; None if invalid.

    A UTC time keeps its "Z" ('2024:12:24 23:30:00Z' -> '2024-12-24T23:30:00Z'), told
    apart from a recorded local offset of "+00:00" (a camera in London in winter)."""
    match = _DATE_RE.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, own_offset = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None  # "0000:00:00 00:00:00" and friends: the camera clock was never set
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}"
    if fraction and fraction.strip(".0"):
        text += fraction[:7].rstrip("0")
    zone = own_offset or _offset(offset)
    if zone:
        if zone != "Z" and ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        # "Z" is kept: it says the instant is UTC (its wall clock comes from the
        # position), where "+00:00" is a local offset (London in winter).
        text += zone
    return text


def _offset(value: str | None) -> str | None:
    if not value:
        return None
    match = _OFFSET_RE.match(value)
    return match.group(1) if match else None


def camera_name(make: str | None, model: str | None) -> str | None:
    """'Make Model', without repeating the maker when the model already names it.

    Canon + 'Canon EOS R5' -> 'Canon EOS R5'; 'NIKON CORPORATION' + 'NIKON D850'
    -> 'NIKON D850' (the first word of the make counts); Apple + 'iPhone 15' ->
    'Apple iPhone 15'.
    """
    if not make:
        return model
    if not model:
        return make
    first_word = make.split()[0].lower()
    if model.lower().startswith((make.lower(), first_word)):
        return model
    return f"{make} {model}"


def _lens(row: dict[str, Any]) -> str | None:
    """LensModel, else Lens, else LensID when it is a name (with -n it can be a bare number)."""
    for tag in ("LensModel", "Lens", "LensID"):
        value = row.get(tag)
        if isinstance(value, str) and value.strip() and not value.strip().isdigit():
            return value.strip()
    return None


def _size(row: dict[str, Any]) -> tuple[int | None, int | None]:
    size = row.get("ImageSize")
    if isinstance(size, str):
        parts = re.split(r"[x ]", size.strip())
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    width, height = row.get("ImageWidth"), row.get("ImageHeight")
    if isinstance(width, int) and isinstance(height, int):
        return width, height
    return None, None


def _gps(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """Signed decimal degrees; (0, 0) counts as unknown - phones write it without a fix."""
    lat, lon = row.get("GPSLatitude"), row.get("GPSLongitude")
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None, None
    if lat == 0 and lon == 0:
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return float(lat), float(lon)


def _video_metadata(row: dict[str, Any], mime: str) -> PhotoMetadata:
    """A video's facts: capture time, place, camera, displayed size and duration.

    The size is the displayed one: a portrait phone clip is stored 1920x1080 with
    a 90 degree rotation in its display matrix and shown 1080x1920, and that is
    what the decoder's frames and every viewer show. exiftool composes GPS from
    Apple's Keys, Android's `©xyz` and 3GPP's `loci` alike (signed, with -n).
    """
    width, height = _size(row)
    rotation = row.get("Rotation")
    if isinstance(rotation, int | float) and round(rotation) % 180 == 90:
        width, height = height, width
    lat, lon = _gps(row)
    make = _text(row.get("Make")) or _text(row.get("AndroidManufacturer"))
    model = _text(row.get("Model")) or _text(row.get("AndroidModel"))
    extra: dict[str, Any] = {}
    if isinstance(row.get("GPSAltitude"), int | float):
        extra["GPSAltitude"] = row["GPSAltitude"]
    content_id = _text(row.get("ContentIdentifier"))
    if content_id:
        extra["content_identifier"] = content_id
    return PhotoMetadata(
        taken_at=video_taken_at(row, mime),
        gps_lat=lat,
        gps_lon=lon,
        camera=camera_name(make, model),
        width=width,
        height=height,
        mime=mime,
        duration=duration_seconds(row.get("Duration")),
        extra=extra,
    )


def video_taken_at(row: dict[str, Any], mime: str) -> str | None:
    """When a video was shot, as ISO 8601.

    Apple's Keys:CreationDate comes first: it is the local time with its offset.
    In MP4/MOV/3GP, next come local times that carry their offset: DateTimeOriginal
    (QuickTime UserData or XMP) and ContentCreateDate (the `©day` atom, which
    Android and many cameras write as "2024:06:01 14:00:00+02:00"). Else the movie
    header's CreateDate (or the media's), which the QuickTime specification defines
    as UTC: it gets a "Z", except from makers whose cameras write their local clock
    there (`LOCAL_CLOCK_MAKERS`: GoPro, DJI, Canon, Sony ...), where it is the local
    wall clock without an offset. A local time without an offset is ambiguous, so it is
    used only when no UTC date is there. Zero dates ("0000:00:00 00:00:00", written
    when the clock is unknown) count as missing. Other containers follow the photo
    rules (Matroska's date carries its own "Z").
    """
    apple = _text(row.get("CreationDate"))
    if apple:
        iso = iso_datetime(apple)
        if iso is not None:
            return iso
    if mime in _QUICKTIME_MIMES:
        local = [_iso(row, tag) for tag in ("DateTimeOriginal", "ContentCreateDate")]
        zoned = next((iso for iso in local if iso is not None and _has_zone(iso)), None)
        if zoned is not None:
            return zoned
        utc = not _local_clock_camera(row)
        for tag in ("CreateDate", "MediaCreateDate"):
            iso = _iso(row, tag)
            if iso is not None:
                return iso if _has_zone(iso) or not utc else iso + "Z"
        return next((iso for iso in local if iso is not None), None)
    return taken_at(row)


#: Makers whose cameras write their local wall clock into QuickTime's CreateDate,
#: against the specification (UTC), as ExifTool's documentation of its QuickTimeUTC
#: option warns: action cameras, drones and most dedicated cameras. Phones (Apple,
#: Android) write UTC. Matched at the start of Make or Model, any case.
LOCAL_CLOCK_MAKERS = (
    "gopro",
    "hero",
    "dji",
    "canon",
    "sony",
    "panasonic",
    "nikon",
    "fujifilm",
    "olympus",
    "om digital",
    "ricoh",
    "insta360",
    "garmin",
    "akaso",
)


def _local_clock_camera(row: dict[str, Any]) -> bool:
    """Whether the file comes from a camera that writes local time as CreateDate."""
    for tag in ("Make", "Model", "AndroidManufacturer", "AndroidModel"):
        value = (_text(row.get(tag)) or "").strip().lower()
        if value.startswith(LOCAL_CLOCK_MAKERS):
            return True
    return False


def _iso(row: dict[str, Any], tag: str) -> str | None:
    value = _text(row.get(tag))
    return iso_datetime(value) if value else None


def _has_zone(iso: str) -> bool:
    return iso.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", iso) is not None


def duration_seconds(value: object) -> float | None:
    """Seconds from exiftool's Duration: a number with -n, but Matroska gives
    "00:00:02.000000000" and some writers "1:02:03" or "12.5 s"."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    text = str(value).strip().removesuffix("s").strip()
    match = _CLOCK_RE.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        total = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        return total if total > 0 else None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number > 0 else None
