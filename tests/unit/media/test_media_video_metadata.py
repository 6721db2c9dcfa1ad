"""Video metadata through the real exiftool: dates, place, camera, displayed size."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from exiftool import ExifToolHelper
from skimage import data as skdata

from helpers.photos import write_jpeg
from helpers.videos import make_audio_only, make_clip
from photovault.media.exiftags import duration_seconds, video_taken_at
from photovault.media.metadata import MetadataReader
from photovault.media.types import MediaError, PhotoMetadata

pytestmark = pytest.mark.skipif(
    shutil.which("exiftool") is None or shutil.which("ffmpeg") is None,
    reason="exiftool or ffmpeg not installed",
)

SCENE = [(skdata.coffee(), 1.0)]
APPLE_KEYS = {
    "com.apple.quicktime.creationdate": "2024-06-01T14:00:00+0200",
    "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.model": "iPhone 12",
    "com.apple.quicktime.content.identifier": "5A0B9F1C-LIVE",
    "com.apple.quicktime.location.ISO6709": "+48.8584+002.2945+035.000/",
}


@pytest.fixture(scope="module")
def reader() -> Iterator[MetadataReader]:
    with MetadataReader() as shared:
        yield shared


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videometa")


def read(reader: MetadataReader, path: Path) -> PhotoMetadata:
    result = reader.read([path])[path]
    assert isinstance(result, PhotoMetadata), result
    return result


@pytest.fixture(scope="module")
def android(reader: MetadataReader, folder: Path) -> PhotoMetadata:
    """An Android-style MP4: UTC creation time, ©xyz position, com.android keys."""
    path = make_clip(
        folder / "PXL_20240601.mp4",
        SCENE,
        creation_time="2024-06-01T12:00:00Z",
        gps=(-33.8568, 151.2153),
        keys={"com.android.manufacturer": "Google", "com.android.model": "Pixel 7"},
    )
    return read(reader, path)


@pytest.fixture(scope="module")
def iphone(reader: MetadataReader, folder: Path) -> PhotoMetadata:
    """An iPhone-style portrait MOV: Keys with a local creation date, zero header dates."""
    path = make_clip(folder / "IMG_0001.MOV", SCENE, rotate=90, keys=APPLE_KEYS)
    return read(reader, path)


def test_the_capture_time_of_an_mp4_is_its_utc_creation_time_with_z(
    android: PhotoMetadata,
) -> None:
    assert android.taken_at == "2024-06-01T12:00:00Z"


def test_the_position_comes_from_androids_iso6709_xyz_atom(android: PhotoMetadata) -> None:
    assert android.gps_lat == pytest.approx(-33.8568)
    assert android.gps_lon == pytest.approx(151.2153)


def test_the_camera_comes_from_androids_manufacturer_and_model_keys(
    android: PhotoMetadata,
) -> None:
    assert android.camera == "Google Pixel 7"


def test_duration_size_and_mime_of_an_mp4(android: PhotoMetadata) -> None:
    assert android.duration == pytest.approx(1.0, abs=0.05)
    assert (android.width, android.height) == (640, 360)
    assert android.mime == "video/mp4"
    assert android.orientation is None
    assert android.lens is None


def test_apples_creation_date_keeps_its_local_offset_over_zero_header_dates(
    iphone: PhotoMetadata,
) -> None:
    assert iphone.taken_at == "2024-06-01T14:00:00+02:00"


def test_apples_keys_give_camera_position_and_the_live_photo_identifier(
    iphone: PhotoMetadata,
) -> None:
    assert iphone.camera == "Apple iPhone 12"
    assert (iphone.gps_lat, iphone.gps_lon) == (pytest.approx(48.8584), pytest.approx(2.2945))
    assert iphone.extra["content_identifier"] == "5A0B9F1C-LIVE"
    assert iphone.mime == "video/quicktime"


def test_a_rotated_clip_reports_its_displayed_portrait_size(iphone: PhotoMetadata) -> None:
    assert (iphone.width, iphone.height) == (360, 640)


def test_the_camera_comes_from_quicktime_user_data_as_samsung_and_cameras_write_it(
    reader: MetadataReader, folder: Path
) -> None:
    path = make_clip(folder / "20240601_120000.mp4", SCENE)
    with ExifToolHelper() as et:
        tags = {"UserData:Make": "samsung", "UserData:Model": "SM-G991B"}
        et.set_tags([str(path)], tags, params=["-overwrite_original"])
    assert read(reader, path).camera == "samsung SM-G991B"


def test_an_itemlist_position_west_of_greenwich_keeps_its_sign(
    reader: MetadataReader, folder: Path
) -> None:
    path = make_clip(folder / "liberty.mp4", SCENE)
    with ExifToolHelper() as et:
        tags = {"ItemList:GPSCoordinates": "40.6892 -74.0445"}
        et.set_tags([str(path)], tags, params=["-overwrite_original"])
    meta = read(reader, path)
    assert (meta.gps_lat, meta.gps_lon) == (pytest.approx(40.6892), pytest.approx(-74.0445))


def test_zero_dates_mean_the_capture_time_is_unknown(reader: MetadataReader, folder: Path) -> None:
    # ffmpeg writes "0000:00:00 00:00:00" header dates when no creation time is given
    # and metadata keys are written.
    path = make_clip(folder / "nodate.mov", SCENE, keys={"com.apple.quicktime.make": "Apple"})
    meta = read(reader, path)
    assert meta.taken_at is None
    assert meta.camera == "Apple"


@pytest.mark.parametrize(
    ("tag", "value", "expected"),
    [
        # ©day as Android and many cameras write it: local time with its offset.
        ("UserData:ContentCreateDate", "2024:06:01 14:00:00+02:00", "2024-06-01T14:00:00+02:00"),
        ("XMP:DateTimeOriginal", "2024:06:01 15:00:00+03:00", "2024-06-01T15:00:00+03:00"),
        ("UserData:DateTimeOriginal", "2024:06:01 16:00:00+04:00", "2024-06-01T16:00:00+04:00"),
        # Without an offset the local time is ambiguous: the UTC header date stays.
        ("UserData:ContentCreateDate", "2024:06:01 14:00:00", "2024-06-01T12:00:00Z"),
    ],
)
def test_a_local_capture_time_with_its_offset_wins_over_the_utc_header_date(
    reader: MetadataReader, folder: Path, tag: str, value: str, expected: str
) -> None:
    name = tag.replace(":", "-") + ("-zoned" if "+" in value else "-local") + ".mp4"
    path = make_clip(folder / name, SCENE, creation_time="2024-06-01T12:00:00Z")
    with ExifToolHelper() as et:
        et.set_tags([str(path)], {tag: value}, params=["-overwrite_original"])
    assert read(reader, path).taken_at == expected


def test_ffmpegs_date_tag_is_read_as_the_local_capture_time(
    reader: MetadataReader, folder: Path
) -> None:
    # ffmpeg's `-metadata date=` writes ©day in the item list (ItemList:ContentCreateDate).
    src = make_clip(folder / "dated-src.mp4", SCENE, creation_time="2024-06-01T12:00:00Z")
    path = folder / "dated.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-c", "copy",
         "-map_metadata", "0", "-metadata", "date=2024-06-01T14:00:00+0200", str(path)],
        check=True,
    )  # fmt: skip
    assert read(reader, path).taken_at == "2024-06-01T14:00:00+02:00"


def test_a_matroska_date_is_utc_and_its_duration_is_read(
    reader: MetadataReader, folder: Path
) -> None:
    path = make_clip(folder / "clip.mkv", SCENE, creation_time="2023-12-24T23:30:00Z")
    meta = read(reader, path)
    assert meta.taken_at == "2023-12-24T23:30:00Z"
    assert meta.duration == pytest.approx(1.0, abs=0.05)
    assert (meta.width, meta.height, meta.mime) == (640, 360, "video/x-matroska")


@pytest.mark.parametrize(("ext", "mime"), [("avi", "video/x-msvideo"), ("3gp", "video/3gpp")])
def test_other_containers_give_size_duration_and_mime(
    reader: MetadataReader, folder: Path, ext: str, mime: str
) -> None:
    meta = read(reader, make_clip(folder / f"clip.{ext}", SCENE))
    assert (meta.width, meta.height, meta.mime) == (640, 360, mime)
    assert meta.duration == pytest.approx(1.0, abs=0.05)


def test_photos_and_videos_read_in_one_call_keep_the_callers_order(
    reader: MetadataReader, folder: Path
) -> None:
    clip = make_clip(folder / "mixed.mp4", SCENE, creation_time="2024-01-01T00:00:00Z")
    photo = write_jpeg(folder / "mixed.jpg", seed=3)
    results = reader.read([clip, photo])
    assert list(results) == [clip, photo]
    assert isinstance(results[photo], PhotoMetadata) and results[photo].mime == "image/jpeg"
    assert isinstance(results[clip], PhotoMetadata) and results[clip].mime == "video/mp4"


def test_an_audio_file_named_mp4_is_not_a_video(reader: MetadataReader, folder: Path) -> None:
    path = make_audio_only(folder / "voice.mp4")
    result = reader.read([path])[path]
    assert isinstance(result, MediaError)
    assert result.reason == "not a video (audio/mp4)"


def test_video_taken_at_prefers_apples_date_then_the_header_dates() -> None:
    row = {"CreateDate": "2024:06:01 12:00:00", "MediaCreateDate": "2024:06:01 12:00:01"}
    assert video_taken_at(row, "video/mp4") == "2024-06-01T12:00:00Z"
    row["CreateDate"] = "0000:00:00 00:00:00"
    assert video_taken_at(row, "video/mp4") == "2024-06-01T12:00:01Z"
    row["CreationDate"] = "2024:06:01 14:00:00+02:00"
    assert video_taken_at(row, "video/mp4") == "2024-06-01T14:00:00+02:00"


def test_video_taken_at_takes_a_zoned_local_time_before_the_utc_header_dates() -> None:
    row = {"CreateDate": "2024:06:01 12:00:00", "ContentCreateDate": "2024:06:01 14:00:00+02:00"}
    assert video_taken_at(row, "video/mp4") == "2024-06-01T14:00:00+02:00"
    row["DateTimeOriginal"] = "2024:06:01 15:00:00+03:00"
    assert video_taken_at(row, "video/quicktime") == "2024-06-01T15:00:00+03:00"
    row["CreationDate"] = "2024:06:01 14:00:00+02:00"  # Apple's key stays first
    assert video_taken_at(row, "video/mp4") == "2024-06-01T14:00:00+02:00"


def test_video_taken_at_uses_a_local_time_without_offset_only_without_a_utc_date() -> None:
    row = {"CreateDate": "2024:06:01 12:00:00", "ContentCreateDate": "2024:06:01 14:00:00"}
    assert video_taken_at(row, "video/mp4") == "2024-06-01T12:00:00Z"
    row["CreateDate"] = "0000:00:00 00:00:00"
    assert video_taken_at(row, "video/mp4") == "2024-06-01T14:00:00"


def test_video_taken_at_of_an_avi_is_its_local_recorded_time() -> None:
    row = {"DateTimeOriginal": "2009:08:15 10:20:30"}
    assert video_taken_at(row, "video/x-msvideo") == "2009-08-15T10:20:30"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(12.5, 12.5), ("00:00:02.000000000", 2.0), ("1:02:03", 3723.0), ("12.5 s", 12.5),
     (0, None), ("", None), (None, None), ("n/a", None)],
)  # fmt: skip
def test_duration_seconds_reads_exiftools_forms(value: object, seconds: float | None) -> None:
    assert duration_seconds(value) == seconds


def test_a_camera_that_writes_its_local_clock_as_createdate_is_not_read_as_utc() -> None:
    """GoPro, DJI and most cameras put local time where QuickTime wants UTC; phones don't."""
    row = {"CreateDate": "2024:06:01 14:00:00"}
    assert video_taken_at(row, "video/mp4") == "2024-06-01T14:00:00Z"  # a phone: UTC
    for make in ({"Make": "GoPro"}, {"Model": "HERO9 Black"}, {"Make": "DJI"}, {"Make": "Canon"}):
        assert video_taken_at({**row, **make}, "video/mp4") == "2024-06-01T14:00:00", make
    assert video_taken_at({**row, "Make": "Apple"}, "video/quicktime") == "2024-06-01T14:00:00Z"
