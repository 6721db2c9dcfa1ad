"""export_strip_location: copies without any location, originals untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from photovault.ops import export as export_mod
from photovault.ops.export import ExportError, export_strip_location, location_tags

from .conftest import (
    EXIFTOOL,
    JPEG_LOCATION,
    KEEP,
    location_keys,
    make_photo,
    needs_exiftool,
    read_tags,
)

pytestmark = needs_exiftool


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trip_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a JPEG full of location fields and a PNG with XMP GPS (built once)."""
    folder = tmp_path_factory.mktemp("template") / "Paris"
    make_photo(folder / "IMG_0001.jpg", "JPEG", *JPEG_LOCATION, *KEEP)
    make_photo(
        folder / "day2" / "pano.png",
        "PNG",
        "-XMP-exif:GPSLatitude=48.8584",
        "-XMP-exif:GPSLongitude=2.2945",
        "-XMP-photoshop:City=Paris",
    )
    return folder


@pytest.fixture
def trip(trip_template: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "Paris"
    shutil.copytree(trip_template, folder)
    return folder


def test_jpeg_copy_loses_every_location_field_and_keeps_the_rest(
    trip: Path, tmp_path: Path
) -> None:
    original = trip / "IMG_0001.jpg"
    assert len(location_keys(original)) >= 15  # the fixture really carries them

    report = export_strip_location([original], tmp_path / "out")

    assert report.ok and [f.copy for f in report.copied] == [tmp_path / "out" / "IMG_0001.jpg"]
    tags = read_tags(report.copied[0].copy)
    assert location_keys(tags) == []
    assert tags["IFD0:Make"] == "Canon" and tags["IFD0:Artist"] == "Ada"
    assert tags["XMP-dc:Subject"] == "tower"


def test_png_copy_loses_its_xmp_gps(trip: Path, tmp_path: Path) -> None:
    png = trip / "day2" / "pano.png"
    assert "XMP-exif:GPSLatitude" in location_keys(png)

    report = export_strip_location([png], tmp_path / "out")

    assert report.ok
    assert location_keys(report.copied[0].copy) == []


def test_heic_copy_loses_the_exif_gps_pillow_heif_wrote(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    heic = tmp_path / "src" / "IMG_0002.heic"
    heic.parent.mkdir()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(heic, exif=exif.tobytes())
    if not location_keys(heic):
        pytest.skip("this pillow-heif does not write the EXIF GPS IFD")

    report = export_strip_location([heic], tmp_path / "out")

    assert report.ok
    tags = read_tags(report.copied[0].copy)
    assert location_keys(tags) == []
    assert tags["IFD0:Make"] == "Apple"


def test_originals_stay_byte_identical_with_their_mtime(trip: Path, tmp_path: Path) -> None:
    files = sorted(p for p in trip.rglob("*") if p.is_file())
    before = {p: (digest(p), p.stat().st_mtime_ns) for p in files}

    report = export_strip_location([trip], tmp_path / "out")

    assert len(report.copied) == 2
    assert {p: (digest(p), p.stat().st_mtime_ns) for p in files} == before


def test_folder_export_keeps_the_folder_name_and_layout(trip: Path, tmp_path: Path) -> None:
    report = export_strip_location([trip], tmp_path / "out")

    assert sorted(str(f.copy.relative_to(tmp_path / "out")) for f in report.copied) == [
        "Paris/IMG_0001.jpg",
        "Paris/day2/pano.png",
    ]


def test_sidecars_and_other_files_are_skipped_not_copied(trip: Path, tmp_path: Path) -> None:
    (trip / "IMG_0001.jpg.xmp").write_text("<x:xmpmeta/>")
    (trip / "notes.txt").write_text("hotel near the tower")
    (trip / "._IMG_0001.jpg").write_bytes(b"\0\5\26\7")

    report = export_strip_location([trip], tmp_path / "out")

    skipped = {p.name for p, _ in report.skipped}
    assert skipped == {"IMG_0001.jpg.xmp", "notes.txt", "._IMG_0001.jpg"}
    out_files = {p.name for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert out_files == {"IMG_0001.jpg", "pano.png"}


def test_a_second_export_of_the_same_name_never_overwrites_the_first(
    trip: Path, tmp_path: Path
) -> None:
    photo = trip / "IMG_0001.jpg"
    out = tmp_path / "out"
    first = export_strip_location([photo], out).copied[0].copy
    first_bytes = first.read_bytes()

    (out / "IMG_0001 (1).jpg").write_bytes(b"an unrelated file the user keeps there")

    second = export_strip_location([photo], out).copied[0].copy

    assert second == out / "IMG_0001 (2).jpg"
    assert (out / "IMG_0001 (1).jpg").read_bytes().startswith(b"an unrelated")
    assert first.read_bytes() == first_bytes
    assert location_keys(second) == []


def test_a_corrupt_file_is_reported_and_the_others_still_exported(
    trip: Path, tmp_path: Path
) -> None:
    (trip / "broken.jpg").write_bytes(b"this is not a jpeg at all")
    truncated = trip / "truncated.jpg"
    truncated.write_bytes((trip / "IMG_0001.jpg").read_bytes()[:400])

    report = export_strip_location([trip], tmp_path / "out")

    failed = {p.name: reason for p, reason in report.failed}
    assert set(failed) == {"broken.jpg", "truncated.jpg"}
    assert all("exiftool" in reason for reason in failed.values())
    assert len(report.copied) == 2
    assert not (tmp_path / "out" / "Paris" / "broken.jpg").exists()
    assert not (tmp_path / "out" / "Paris" / "truncated.jpg").exists()


def test_an_unreadable_file_is_reported_by_name(trip: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    locked = trip / "IMG_0001.jpg"
    locked.chmod(0)
    try:
        report = export_strip_location([trip], tmp_path / "out")
    finally:
        locked.chmod(0o644)

    assert [(p.name, "cannot copy" in r) for p, r in report.failed] == [("IMG_0001.jpg", True)]
    assert len(report.copied) == 1


def test_the_second_pass_removes_tags_the_first_pass_missed(
    trip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_mod, "STRIP_ARGS", ("-gps:all=",))

    report = export_strip_location([trip / "IMG_0001.jpg"], tmp_path / "out")

    assert report.ok
    assert location_keys(report.copied[0].copy) == []


def test_a_copy_that_keeps_its_location_is_deleted_and_reported(trip: Path, tmp_path: Path) -> None:
    # An exiftool that silently skips the writing command and only reads back.
    fake = tmp_path / "exiftool-readonly"
    fake.write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ] && [ "$1" != -execute ]; do shift; done\n'
        f'[ $# -gt 0 ] && shift && exec {EXIFTOOL} "$@"\nexit 0\n'
    )
    fake.chmod(0o755)

    report = export_strip_location([trip / "IMG_0001.jpg"], tmp_path / "out", exiftool=str(fake))

    assert report.copied == []
    [(path, reason)] = report.failed
    assert path == trip / "IMG_0001.jpg"
    assert "could not be removed" in reason and "GPS:GPSLatitude" in reason
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_source_is_refused_before_anything_is_copied(trip: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no-such-folder"):
        export_strip_location([trip, tmp_path / "no-such-folder"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_destination_that_is_a_file_is_refused(trip: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(ExportError, match="is a file"):
        export_strip_location([trip], tmp_path / "out")


def test_a_destination_inside_the_source_folder_is_refused(trip: Path) -> None:
    with pytest.raises(ExportError, match="inside the source folder"):
        export_strip_location([trip], trip / "shared")


def test_a_missing_exiftool_is_a_clear_error(trip: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot run exiftool"):
        export_strip_location([trip], tmp_path / "out", exiftool="/nonexistent/exiftool")


def test_location_tags_judges_tag_names_not_values() -> None:
    row = {
        "SourceFile": "/x/GPS city.jpg",
        "IFD0:Make": "Paris Camera Co",
        "XMP-photoshop:State": "IDF",
        "IPTC:Province-State": "IDF",
        "XMP-iptcExt:LocationShownSublocation": "Louvre",
        "Panasonic:Landmark": "Louvre",
        "Composite:GPSPosition": "48 2",
        "File:ColorComponents": 3,
    }
    assert location_tags(row) == [
        "XMP-photoshop:State",
        "IPTC:Province-State",
        "XMP-iptcExt:LocationShownSublocation",
        "Panasonic:Landmark",
        "Composite:GPSPosition",
    ]


def test_copies_are_removed_when_exiftool_hangs(trip: Path, tmp_path: Path) -> None:
    slow = tmp_path / "exiftool-hangs"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)

    with pytest.raises(ExportError, match="longer than"):
        export_strip_location([trip], tmp_path / "out", exiftool=str(slow), timeout_s=0.1)

    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
