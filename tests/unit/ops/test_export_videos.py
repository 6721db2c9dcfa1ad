"""`export --strip-location` on videos (#19): header location and timed GPS tracks go,
the creation date and the rotation stay, and a clip that cannot be checked is not
exported. Real ffmpeg, ffprobe and exiftool; the clips are made here."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from helpers.videos import make_clip, solid, truncate
from photovault.ops.export import export_strip_location, is_location_tag
from photovault.ops.export_strip import strip_and_verify
from photovault.ops.export_tags import STRIP_ARGS

from .conftest import EXIFTOOL, exiftool_write, location_keys, make_photo, read_tags

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(
    not (EXIFTOOL and FFMPEG and shutil.which("ffprobe")), reason="needs exiftool and ffmpeg"
)

#: Positions as a Yuneec drone writes them into a subtitle track (exiftool -ee reads them).
GPS_SUBTITLES = """1
00:00:00,000 --> 00:00:00,500
Lat:48.858400 Lon:2.294500 Alt:35.0 m

2
00:00:00,500 --> 00:00:01,000
Lat:48.858500 Lon:2.294600 Alt:35.0 m
"""
KEYS_LOCATION = (
    "-Keys:GPSCoordinates=48.8584, 2.2945, 35",
    "-Keys:LocationName=Tour Eiffel",
    "-Keys:CreationDate=2024:06:01 14:00:00+02:00",
    "-Keys:Make=Apple",
)


def clip(path: Path, gps: tuple[float, float] | None = (48.8584, 2.2945)) -> Path:
    """A one-second clip, turned 90 degrees, with a capture time and a ©xyz position."""
    return make_clip(
        path,
        [(solid((30, 120, 60)), 1.0)],
        size=(96, 64),
        rotate=90,
        creation_time="2024-06-01T12:00:00Z",
        gps=gps,
    )


def with_gps_track(path: Path, tmp: Path) -> Path:
    """`path` (an MP4) with a subtitle track of GPS positions added, and Apple Keys location."""
    srt = tmp / "gps.srt"
    srt.write_text(GPS_SUBTITLES)
    plain = clip(tmp / "plain-for-track.mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    assert FFMPEG is not None
    cmd: list[str | Path] = [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", plain, "-i", srt]
    cmd += ["-map", "0"]
    cmd += ["-map", "1", "-c", "copy", "-c:s", "mov_text", "-map_metadata", "0", path]
    subprocess.run(cmd, check=True)
    exiftool_write(path, *KEYS_LOCATION)
    return path


def stream_types(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", path],
        check=True,
        capture_output=True,
    ).stdout
    return [s["codec_type"] for s in json.loads(out)["streams"]]


def test_a_video_is_copied_without_its_location_keeping_date_rotation_and_duration(
    tmp_path: Path,
) -> None:
    source = clip(tmp_path / "src" / "clip.mp4")
    assert "UserData:GPSCoordinates" in read_tags(source)  # ©xyz, as phones write it

    report = export_strip_location([source], tmp_path / "out")

    assert report.failed == [] and len(report.copied) == 1
    tags = read_tags(report.copied[0].copy)
    assert location_keys(tags) == []
    assert tags["QuickTime:CreateDate"] == "2024:06:01 12:00:00"
    assert tags["Composite:Rotation"] == 90
    assert float(tags["QuickTime:Duration"]) == pytest.approx(1.0, abs=0.1)


def test_a_timed_gps_track_and_apple_keys_location_are_removed(tmp_path: Path) -> None:
    source = with_gps_track(tmp_path / "src" / "drone.mp4", tmp_path)
    original = source.read_bytes()
    before = read_tags(source)
    assert {"Track2:GPSLatitude", "Keys:GPSCoordinates", "Keys:LocationName"} <= set(before)
    assert stream_types(source) == ["video", "subtitle"]

    report = export_strip_location([source], tmp_path / "out")

    assert report.failed == [], report.failed
    copy = report.copied[0].copy
    after = read_tags(copy)
    assert location_keys(after) == []
    assert stream_types(copy) == ["video"]
    assert after["QuickTime:CreateDate"] == "2024:06:01 12:00:00"
    assert after["Keys:CreationDate"] == "2024:06:01 14:00:00+02:00"  # copied back
    assert after["Keys:Make"] == "Apple"
    assert after["Composite:Rotation"] == 90
    assert source.read_bytes() == original


def test_exiftool_alone_cannot_remove_a_timed_gps_track_and_the_read_back_says_so(
    tmp_path: Path,
) -> None:
    copy = with_gps_track(tmp_path / "drone.mp4", tmp_path)
    assert EXIFTOOL is not None

    problems = strip_and_verify([copy], EXIFTOOL, 60.0, STRIP_ARGS)

    assert "could not be removed" in problems[copy] and "Track2:GPSLatitude" in problems[copy]


def test_a_clip_that_cannot_be_checked_is_not_exported_and_is_named_in_the_report(
    tmp_path: Path,
) -> None:
    broken = truncate(clip(tmp_path / "src" / "broken.mp4"), 0.6)
    good = clip(tmp_path / "src" / "good.mp4")

    report = export_strip_location([broken, good], tmp_path / "out")

    assert [f.source for f in report.copied] == [good]
    [(path, reason)] = report.failed
    assert path == broken and "Truncated" in reason  # exiftool: "Truncated mdat atom"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]


def test_a_matroska_clip_loses_its_location_through_ffmpeg(tmp_path: Path) -> None:
    plain = clip(tmp_path / "plain.mp4", gps=None)
    source = tmp_path / "src" / "clip.mkv"
    source.parent.mkdir()
    assert FFMPEG is not None
    cmd: list[str | Path] = [FFMPEG, "-nostdin", "-v", "error", "-i", plain, "-c", "copy"]
    cmd += ["-metadata", "location=+48.8584+002.2945/", "-metadata", "RECORDING_LOCATION=Paris"]
    cmd += ["-metadata", "creation_time=2024-06-01T12:00:00Z", source]
    subprocess.run(cmd, check=True)
    assert {"Matroska:Location", "Matroska:RecordingLocation"} <= set(read_tags(source))

    report = export_strip_location([source], tmp_path / "out")

    assert report.failed == [], report.failed
    assert location_keys(report.copied[0].copy) == []


def test_matroska_location_tags_count_as_location() -> None:
    assert is_location_tag("Matroska", "Location", "Video")
    assert is_location_tag("Matroska", "RecordingLocation", "Video")
    assert not is_location_tag("Matroska", "Title", "Video")
    assert not any("Matroska" in arg for arg in STRIP_ARGS)  # exiftool cannot write them


def test_a_motion_photo_whose_video_carries_a_location_loses_that_video_and_says_so(
    tmp_path: Path,
) -> None:
    video = clip(tmp_path / "micro.mp4").read_bytes()
    still = make_photo(tmp_path / "src" / "PXL_1.MP.jpg", "JPEG")
    exiftool_write(
        still, "-XMP-GCamera:MicroVideo=1", f"-XMP-GCamera:MicroVideoOffset={len(video)}"
    )
    still.write_bytes(still.read_bytes() + video)  # Google's motion photo: the MP4 at the end
    assert b"\xa9xyz" in still.read_bytes()

    report = export_strip_location([still], tmp_path / "out")

    assert report.failed == []
    [copied] = report.copied
    assert copied.dropped == ("File:EmbeddedVideo",)
    assert b"\xa9xyz" not in copied.copy.read_bytes()
    after = read_tags(copied.copy)
    assert location_keys(after) == []
    assert not any("MicroVideo" in key for key in after)  # no pointer to a video that is gone


def add_track_location(path: Path) -> Path:
    """Put a ``©xyz`` into the first track's own ``udta`` of an MP4 whose moov is last
    (as ffmpeg writes it): exiftool reads it there but cannot write or delete it."""
    data = bytearray(path.read_bytes())

    def boxes(start: int, end: int) -> list[tuple[int, int, bytes]]:
        out, pos = [], start
        while pos < end:
            size, kind = struct.unpack(">I4s", data[pos : pos + 8])
            out.append((pos, size, kind))
            pos += size
        return out

    [(moov, moov_size, _)] = [b for b in boxes(0, len(data)) if b[2] == b"moov"]
    assert moov + moov_size == len(data)  # no chunk offset moves
    trak, trak_size, _ = next(b for b in boxes(moov + 8, len(data)) if b[2] == b"trak")
    text = b"+48.8584+002.2945/"
    xyz = struct.pack(">I4sHH", 12 + len(text), b"\xa9xyz", len(text), 0x15C7) + text
    udta = struct.pack(">I4s", 8 + len(xyz), b"udta") + xyz
    data[trak + trak_size : trak + trak_size] = udta
    for at, size in ((moov, moov_size), (trak, trak_size)):
        struct.pack_into(">I", data, at, size + len(udta))
    path.write_bytes(bytes(data))
    return path


def test_a_location_exiftool_can_only_read_goes_with_a_remux(tmp_path: Path) -> None:
    source = add_track_location(clip(tmp_path / "src" / "track.mp4", gps=None))
    assert "Track1:Track1GPSCoordinates" in read_tags(source)
    assert EXIFTOOL is not None
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(source, copy)
    assert "Track1:Track1GPSCoordinates" in strip_and_verify([copy], EXIFTOOL, 60, STRIP_ARGS)[copy]

    report = export_strip_location([source], tmp_path / "out")

    assert report.failed == [], report.failed
    after = read_tags(report.copied[0].copy)
    assert location_keys(after) == []
    assert after["Composite:Rotation"] == 90


def test_without_ffmpeg_a_video_is_not_exported_and_a_photo_still_is(tmp_path: Path) -> None:
    video = clip(tmp_path / "src" / "clip.mp4")
    photo = make_photo(tmp_path / "src" / "photo.jpg", "JPEG", "-GPSLatitude=48.8584")

    report = export_strip_location(
        [video, photo], tmp_path / "out", ffmpeg=str(tmp_path / "no-ffmpeg")
    )

    assert [f.source for f in report.copied] == [photo]
    [(path, reason)] = report.failed
    assert path == video and "no-ffmpeg not found" in reason
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.jpg"]
