"""export_strip_location and `vaultctl export` with file names that are not UTF-8 (#14).

File names are bytes on Linux: b"caf\\xe9.jpg" from an old Latin-1 camera or
share is a valid name that no UTF-8 text spells. Python carries such a name as
a str with the bad bytes as lone surrogates (`os.fsdecode`), exiftool as raw
bytes. Every file here is created through its bytes path, written by Pillow and
the real exiftool, and the copies are checked with exiftool directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from photovault.ops.export import export_strip_location

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

GPS = ("-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E")


def named(folder: Path, *parts: bytes) -> Path:
    """The path `folder/parts...`, each part given as the raw bytes of its name."""
    return folder.joinpath(*(os.fsdecode(p) for p in parts))


def names_in(folder: Path) -> list[bytes]:
    """Every file under `folder`, as its raw path relative to `folder`, sorted."""
    root = os.fsencode(folder)
    found = []
    for here, _dirs, files in os.walk(root):
        found += [os.path.relpath(os.path.join(here, f), root) for f in files]
    return sorted(found)


def gps_tags(path: Path) -> list[str]:
    """The GPS tags exiftool finds in `path`, read by exiftool on the raw bytes name."""
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-n", "-gps:all", "-xmp-exif:gps*", os.fsencode(path)],
        check=True,
        capture_output=True,
    ).stdout
    return [key for key in json.loads(out)[0] if key != "SourceFile"]


def test_a_photo_with_a_latin1_name_is_copied_under_the_same_bytes_without_gps(
    tmp_path: Path,
) -> None:
    photo = make_photo(named(tmp_path, b"src", b"caf\xe9.jpg"), "JPEG", *JPEG_LOCATION, *KEEP)
    assert os.listdir(os.fsencode(photo.parent)) == [b"caf\xe9.jpg"]
    assert "GPS:GPSLatitude" in gps_tags(photo)  # the fixture really carries GPS

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok and report.failed == []
    [copied] = report.copied
    assert copied.source == photo
    assert os.fsencode(copied.copy) == os.fsencode(tmp_path / "out") + b"/caf\xe9.jpg"
    assert names_in(tmp_path / "out") == [b"caf\xe9.jpg"]
    assert gps_tags(copied.copy) == []
    tags = read_tags(copied.copy)
    assert location_keys(tags) == []
    assert tags["IFD0:Make"] == "Canon" and tags["IFD0:Artist"] == "Ada"
    assert "GPS:GPSLatitude" in gps_tags(photo)  # the original keeps its GPS


def test_a_folder_with_names_in_several_broken_encodings_keeps_every_name_byte_for_byte(
    tmp_path: Path,
) -> None:
    folder = named(tmp_path, b"src", b"Z\xfcrich")
    make_photo(named(folder, b"\xff\xfe.jpg"), "JPEG", *GPS)
    make_photo(named(folder, b"IMG_0001.jpg"), "JPEG", *GPS)
    make_photo(named(folder, b"d\xe9j\xe0", b"pano\x80.png"), "PNG", "-XMP-exif:GPSLatitude=48.8")
    make_photo(named(folder, "été".encode() + b".jpg"), "JPEG", *GPS)

    report = export_strip_location([folder], tmp_path / "out")

    assert report.failed == [] and len(report.copied) == 4
    assert names_in(tmp_path / "out") == sorted(
        [
            b"Z\xfcrich/\xff\xfe.jpg",
            b"Z\xfcrich/IMG_0001.jpg",
            b"Z\xfcrich/d\xe9j\xe0/pano\x80.png",
            b"Z\xfcrich/" + "été.jpg".encode(),
        ]
    )
    for f in report.copied:
        assert gps_tags(f.copy) == [], f.copy
        assert location_keys(f.copy) == [], f.copy


def test_names_that_differ_only_in_bytes_that_are_not_utf8_are_told_apart(
    tmp_path: Path,
) -> None:
    """exiftool's JSON prints every bad byte as '?': these three would be one name."""
    src = tmp_path / "src"
    make_photo(named(src, b"a\xe9.jpg"), "JPEG", *GPS, "-Artist=first")
    make_photo(named(src, b"a\xe8.jpg"), "JPEG", *GPS, "-Artist=second")
    make_photo(named(src, b"a?.jpg"), "JPEG", *GPS, "-Artist=third")

    report = export_strip_location([src], tmp_path / "out")

    assert report.failed == [] and len(report.copied) == 3
    artists = {os.fsencode(f.copy.name): read_tags(f.copy)["IFD0:Artist"] for f in report.copied}
    assert artists == {b"a\xe9.jpg": "first", b"a\xe8.jpg": "second", b"a?.jpg": "third"}
    assert all(gps_tags(f.copy) == [] for f in report.copied)


def test_a_second_export_of_a_latin1_name_gets_the_next_free_name_in_the_same_bytes(
    tmp_path: Path,
) -> None:
    photo = make_photo(named(tmp_path, b"src", b"caf\xe9.jpg"), "JPEG", *GPS)
    out = tmp_path / "out"
    export_strip_location([photo], out)

    second = export_strip_location([photo], out)

    assert second.ok
    assert os.fsencode(second.copied[0].copy.name) == b"caf\xe9 (1).jpg"
    assert names_in(out) == [b"caf\xe9 (1).jpg", b"caf\xe9.jpg"]
    assert gps_tags(second.copied[0].copy) == []


def test_a_latin1_named_photo_loses_its_thumbnail_that_carries_gps(tmp_path: Path) -> None:
    thumb = make_photo(tmp_path / "thumb.jpg", "JPEG", *GPS)
    photo = make_photo(named(tmp_path, b"src", b"vacances \xe0 Nice.jpg"), "JPEG", *GPS)
    assert EXIFTOOL is not None
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", f"-ThumbnailImage<={thumb}", os.fsencode(photo)],
        check=True,
    )

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    copy = report.copied[0].copy
    assert gps_tags(copy) == []
    assert location_keys(copy) == []
    thumbnail = subprocess.run(
        [EXIFTOOL, "-b", "-ThumbnailImage", os.fsencode(copy)], check=True, capture_output=True
    ).stdout
    assert thumbnail == b""  # an embedded image with a location goes, it cannot be cleaned


def test_a_corrupt_file_with_a_latin1_name_is_reported_with_exiftools_reason(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    make_photo(named(src, b"caf\xe9.jpg"), "JPEG", *GPS)
    broken = named(src, b"cass\xe9.jpg")
    broken.write_bytes(b"this is not a jpeg at all")

    report = export_strip_location([src], tmp_path / "out")

    [(path, reason)] = report.failed
    assert path == broken
    assert reason.startswith("exiftool could not rewrite it: ")
    assert names_in(tmp_path / "out") == [b"src/caf\xe9.jpg"]


def vaultctl(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """`vaultctl` as a user runs it: its own process, arguments and output as bytes."""
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    env.pop("PYTHONIOENCODING", None)
    return subprocess.run(
        [sys.executable, "-m", "photovault.cli.vaultctl", *args],
        capture_output=True,
        env=env,
        timeout=120,
    )


def test_vaultctl_export_prints_a_latin1_name_as_its_bytes(tmp_path: Path) -> None:
    photo = make_photo(named(tmp_path, b"src", b"caf\xe9.jpg"), "JPEG", *GPS)
    out = tmp_path / "out"

    done = vaultctl("export", "--strip-location", os.fsencode(photo), os.fsencode(out) + b"/")

    assert done.returncode == 0, done.stderr
    copy = os.fsencode(out) + b"/caf\xe9.jpg"
    assert done.stdout.splitlines() == [
        b"copied " + os.fsencode(photo) + b" -> " + copy + b" (location removed)"
    ]
    assert b"\\udc" not in done.stdout + done.stderr
    assert gps_tags(Path(os.fsdecode(copy))) == []


def test_vaultctl_export_names_a_failed_latin1_file_by_its_bytes_on_stderr(
    tmp_path: Path,
) -> None:
    broken = named(tmp_path, b"src", b"cass\xe9.jpg")
    broken.parent.mkdir()
    broken.write_bytes(b"this is not a jpeg at all")

    done = vaultctl(
        "export", "--strip-location", os.fsencode(broken), os.fsencode(tmp_path / "out")
    )

    assert done.returncode == 2
    assert b"vaultctl: FAILED " + os.fsencode(broken) + b": exiftool could not rewrite it" in (
        done.stderr
    )
    assert b"\\udc" not in done.stderr
    assert names_in(tmp_path / "out") == []


@pytest.mark.parametrize("name", [b"caf\xe9.jpg", b"\xc3.jpg", b"-\xe9.jpg"])
def test_the_original_with_a_name_that_is_not_utf8_stays_untouched(
    tmp_path: Path, name: bytes
) -> None:
    photo = make_photo(named(tmp_path, b"src", name), "JPEG", *GPS)
    before = (photo.read_bytes(), photo.stat().st_mtime_ns)

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok and names_in(tmp_path / "out") == [name]
    assert (photo.read_bytes(), photo.stat().st_mtime_ns) == before
