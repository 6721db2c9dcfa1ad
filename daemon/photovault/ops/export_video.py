"""Videos in an export: timed metadata tracks go, with ffmpeg, before exiftool strips the rest.

Why: exiftool deletes the location tags of a QuickTime/MP4 header (Keys and
ItemList GPSCoordinates, UserData ``©xyz``, Apple LocationName, XMP GPS, ...)
but cannot remove timed metadata: a GPS track (GoPro ``gpmd``, Google
``camm``, a subtitle track holding positions, Sony ``rtmd``, Apple ``mebx``)
is a stream of samples, not a tag. So a video copy whose streams include
anything but video and audio is remuxed by ffmpeg keeping only its video and
audio streams (``-c copy``: no re-encoding; the rotation lives in the track
header and is kept), with the container's metadata (creation date included)
less ffmpeg's location keys. exiftool then copies the original's other header
tags back (Keys, ItemList, XMP: make, model, Apple's creation date with its
offset); the ordinary strip that follows removes the location among them.

Formats exiftool cannot write (Matroska, WebM, AVI, MPEG-TS, MPEG-PS, ASF)
are always remuxed, the location keys dropped on the way, and then only read
back. Either way the read-back (``-ee``: timed and embedded data included)
decides: a copy that still carries a location is removed and reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from photovault.media.formats import extension_of, is_video
from photovault.sidecar.writer import CONFIG_PATH

log = logging.getLogger(__name__)

#: Video containers exiftool can write (QuickTime based): stripped in place.
EXIFTOOL_WRITES: frozenset[str] = frozenset({"mp4", "mov", "m4v", "3gp", "3g2"})
#: The ffmpeg muxer for each writable container (ffmpeg would take "ipod" for .m4v).
_MUXER = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "3gp": "3gp", "3g2": "3g2"}
#: Stream types a copy keeps; any other stream (data, subtitle, attachment) is dropped.
KEPT_STREAMS = frozenset({"video", "audio"})
#: ffmpeg's metadata keys for a location (ISO 6709), global and per stream.
_LOCATION_KEYS = (
    "location",
    "location-eng",
    "com.apple.quicktime.location.ISO6709",
    "RECORDING_LOCATION",  # Matroska
    "COMPOSITION_LOCATION",
)


class VideoError(Exception):
    """ffprobe or ffmpeg could not read or remux a copy; the message says why."""


def read_only(copies: Iterable[Path]) -> set[Path]:
    """The video copies exiftool cannot write: remuxed always, then only read back."""
    return {c for c in copies if is_video(c) and extension_of(c) not in EXIFTOOL_WRITES}


def _file(path: Path) -> bytes:
    """A path as ffmpeg takes it: raw bytes, ``file:`` so no part reads as a protocol."""
    return b"file:" + os.fsencode(os.path.abspath(path))


def other_streams(path: Path, ffprobe: str, timeout_s: float) -> list[str]:
    """The streams of `path` that are neither video nor audio ("data gpmd", "subtitle tx3g")."""
    try:
        cmd: list[str | bytes] = [ffprobe, "-v", "error", "-of", "json", _file(path)]
        cmd += ["-show_entries", "stream=codec_type,codec_tag_string"]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VideoError(f"ffprobe could not read it: {exc}") from exc
    if proc.returncode != 0:
        raise VideoError(f"ffprobe could not read it: {_last_line(proc.stderr)}")
    try:
        streams = json.loads(proc.stdout or b"{}").get("streams") or []
    except (json.JSONDecodeError, AttributeError) as exc:
        raise VideoError("ffprobe gave no stream list") from exc
    return [
        f"{s.get('codec_type', '?')} {s.get('codec_tag_string', '?')}"
        for s in streams
        if isinstance(s, dict) and s.get("codec_type") not in KEPT_STREAMS
    ]


def _last_line(stderr: bytes) -> str:
    lines = os.fsdecode(stderr).strip().splitlines()
    return lines[-1] if lines else "no reason given"


def remux(copy: Path, ffmpeg: str, exiftool: str, timeout_s: float) -> None:
    """Rewrite `copy` in place with its video and audio streams only (no re-encoding).

    The global metadata goes along (``-map_metadata 0``: the creation date),
    less the location keys; for a container exiftool writes, the original's
    header tags are copied back by exiftool (what ffmpeg does not carry; its
    location tags are removed by the strip that follows). Raises `VideoError`;
    the copy is then unchanged.
    """
    ext = extension_of(copy)
    st = os.stat(copy)
    fd, tmp_name = tempfile.mkstemp(dir=copy.parent, prefix=".photovault-remux-", suffix=f".{ext}")
    os.close(fd)
    tmp = Path(tmp_name)
    cmd: list[str | bytes] = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", _file(copy)]
    cmd += ["-map", "0:v?", "-map", "0:a?", "-c", "copy", "-map_metadata", "0"]
    for key in _LOCATION_KEYS:
        cmd += ["-metadata", f"{key}=", "-metadata:s", f"{key}="]
    if ext in _MUXER:
        cmd += ["-f", _MUXER[ext], "-movflags", "+faststart"]
    cmd.append(_file(tmp))
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VideoError(f"ffmpeg could not remux it: {exc}") from exc
        if proc.returncode != 0:
            raise VideoError(f"ffmpeg could not remux it: {_last_line(proc.stderr)}")
        if ext in EXIFTOOL_WRITES:
            _copy_header_tags(copy, tmp, exiftool, timeout_s)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, copy)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _copy_header_tags(source: Path, target: Path, exiftool: str, timeout_s: float) -> None:
    """exiftool copies `source`'s writable tags to `target`; trouble only loses those tags."""
    cmd: list[str | bytes] = [exiftool, "-config", os.fsencode(CONFIG_PATH), "-m", "-q"]
    cmd += ["-overwrite_original", "-P", "-tagsFromFile", os.fsencode(os.path.abspath(source))]
    cmd += ["-all:all", os.fsencode(os.path.abspath(target))]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("export: header tags of %s not copied back: %s", source, exc)
        return
    if proc.returncode != 0:
        log.warning(
            "export: header tags of %s not copied back: %s", source, _last_line(proc.stderr)
        )


def prepare_videos(
    copies: Iterable[Path],
    *,
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
    exiftool: str = "exiftool",
    timeout_s: float = 600.0,
    remuxed: set[Path] | None = None,
    force: bool = False,
) -> dict[Path, str]:
    """Remux the video copies that need it (see the module notes); returns the copies
    that must not be kept, with why. Photos are passed over. `remuxed` gets the
    copies remuxed; `force` remuxes every video copy (one whose location exiftool
    could not remove: ffmpeg rewrites the whole header, so atoms exiftool can
    only read, a track's own ``©xyz`` or Windows' Xtra, are left behind)."""
    problems: dict[Path, str] = {}
    videos = [c for c in copies if is_video(c)]
    missing = [tool for tool in (ffmpeg, ffprobe) if shutil.which(tool) is None]
    writes_not = read_only(videos)
    for copy in videos:
        if missing:
            problems[copy] = f"cannot be checked: {' and '.join(missing)} not found"
            continue
        try:
            others = other_streams(copy, ffprobe, timeout_s)
            if force or others or copy in writes_not:
                remux(copy, ffmpeg, exiftool, timeout_s)
                if remuxed is not None:
                    remuxed.add(copy)
                if others:
                    log.info("export: %s: dropped the streams %s", copy, ", ".join(others))
        except VideoError as exc:
            problems[copy] = str(exc)
    return problems
