"""export_strip_location: location hidden in embedded images and in rarer tags (#14).

Every photo here is a real file written by Pillow and the real exiftool. The
checks read the copies back with exiftool directly (`read_tags`, and the
embedded images extracted with `-b`), not with the export's own matcher.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from photovault.cli import vaultctl
from photovault.ops.export import export_strip_location, location_tags

from .conftest import EXIFTOOL, exiftool_write, location_keys, make_photo, needs_exiftool, read_tags

pytestmark = needs_exiftool

GPS = ("-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def embedded(path: Path, tag: str = "ThumbnailImage") -> bytes:
    """The bytes of one embedded image, as anyone with exiftool would get them."""
    assert EXIFTOOL is not None
    return subprocess.run(
        [EXIFTOOL, "-b", f"-{tag}", str(path)], check=True, capture_output=True
    ).stdout


def embedded_location(path: Path, tag: str = "ThumbnailImage") -> list[str]:
    """Location tags inside the embedded image `tag` of `path` ([] when there is none)."""
    data = embedded(path, tag)
    if not data:
        return []
    inner = path.with_name(f"{path.name}.{tag}.jpg")
    inner.write_bytes(data)
    try:
        return location_keys(inner)
    finally:
        inner.unlink()


def with_thumbnail(path: Path, thumb_tags: tuple[str, ...], *main_tags: str) -> Path:
    """A JPEG at `path` whose EXIF thumbnail carries `thumb_tags`."""
    thumb = make_photo(path.with_name(path.stem + "-thumb.jpg"), "JPEG", *thumb_tags)
    make_photo(path, "JPEG", "-Make=Canon", *main_tags)
    exiftool_write(path, f"-ThumbnailImage<={thumb}")
    thumb.unlink()
    return path


def samsung_trailer(entries: list[tuple[int, str, bytes]]) -> bytes:
    """A Samsung JPEG trailer (SEFH directory, SEFT footer) as Galaxy phones append it."""
    blocks, offsets = b"", []
    for kind, name, value in entries:
        offsets.append(len(blocks))
        blocks += struct.pack("<HHI", 0, kind, len(name)) + name.encode() + value
    directory = b"SEFH" + struct.pack("<II", 101, len(entries))
    for (kind, name, value), offset in zip(entries, offsets, strict=True):
        directory += struct.pack("<HHII", 0, kind, len(blocks) - offset, 8 + len(name) + len(value))
    return blocks + directory + struct.pack("<I", len(directory)) + b"SEFT"


def exiftool_that_cannot_write(tmp_path: Path) -> Path:
    """A real exiftool that silently skips every writing command (and only that)."""
    fake = tmp_path / "bin" / "exiftool"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -overwrite_original "*)\n'
        '  while [ $# -gt 0 ] && [ "$1" != -execute ]; do shift; done; shift;;\n'
        "esac\n"
        f'exec {EXIFTOOL} "$@"\n'
    )
    fake.chmod(0o755)
    return fake


def test_gps_inside_the_exif_thumbnail_does_not_reach_the_copy(tmp_path: Path) -> None:
    photo = with_thumbnail(
        tmp_path / "src" / "IMG_0100.jpg", (*GPS, "-XMP-photoshop:City=Paris"), *GPS
    )
    assert embedded_location(photo)  # the fixture really hides GPS in the thumbnail
    before = digest(photo)

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    copy = report.copied[0].copy
    assert location_keys(copy) == []
    assert embedded_location(copy) == []
    assert read_tags(copy)["IFD0:Make"] == "Canon"
    assert digest(photo) == before and embedded_location(photo)


def test_a_thumbnail_without_location_is_kept_byte_for_byte(tmp_path: Path) -> None:
    photo = with_thumbnail(tmp_path / "src" / "IMG_0101.jpg", (), *GPS)
    thumbnail = embedded(photo)
    assert thumbnail

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    assert location_keys(report.copied[0].copy) == []
    assert embedded(report.copied[0].copy) == thumbnail


def test_a_location_two_images_deep_is_found_and_removed(tmp_path: Path) -> None:
    inner = with_thumbnail(tmp_path / "inner.jpg", GPS)  # a thumbnail with GPS in its thumbnail
    photo = make_photo(tmp_path / "src" / "IMG_0102.jpg", "JPEG", "-Make=Canon")
    exiftool_write(photo, f"-ThumbnailImage<={inner}")
    assert embedded_location(photo) == []  # one level down, nothing is visible yet

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    assert embedded(report.copied[0].copy) == b""


def test_gps_in_a_second_mpf_image_is_removed_and_the_photo_still_opens(
    tmp_path: Path,
) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    photo = tmp_path / "src" / "IMG_0103.jpg"
    photo.parent.mkdir()
    Image.new("RGB", (64, 48), (200, 0, 0)).save(
        photo,
        "MPO",
        save_all=True,
        exif=exif.tobytes(),
        append_images=[Image.new("RGB", (64, 48), (0, 0, 200))],
    )
    assert embedded_location(photo, "MPImage2")  # the second image carries GPS too

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    copy = report.copied[0].copy
    assert location_keys(copy) == []  # read with -ee: MPF images included
    assert embedded_location(copy, "MPImage2") == []
    with Image.open(copy) as im:
        assert im.size == (64, 48)


def test_xmp_dc_coverage_place_names_are_removed(tmp_path: Path) -> None:
    photo = make_photo(
        tmp_path / "src" / "IMG_0104.jpg",
        "JPEG",
        "-XMP-dc:Coverage=Paris, Champ de Mars",
        "-XMP-dc:Subject=tower",
    )

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    tags = read_tags(report.copied[0].copy)
    assert "XMP-dc:Coverage" not in tags
    assert tags["XMP-dc:Subject"] == "tower"


def test_samsung_mcc_data_in_the_jpeg_trailer_is_removed(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "src" / "20240601_101010.jpg", "JPEG", "-Make=samsung", *GPS)
    with photo.open("ab") as f:
        f.write(samsung_trailer([(0x0AA1, "MCC_Data", b"208")]))  # 208: France
    assert "Samsung:MCCData" in read_tags(photo)

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    tags = read_tags(report.copied[0].copy)
    assert "Samsung:MCCData" not in tags
    assert location_keys(tags) == []
    assert tags["IFD0:Make"] == "samsung"


def test_a_photo_with_a_chromaticity_colour_profile_exports_with_its_profile(
    tmp_path: Path,
) -> None:
    photo = tmp_path / "src" / "IMG_0105.jpg"
    photo.parent.mkdir()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (48, 32), (20, 90, 160)).save(photo, icc_profile=profile)
    exiftool_write(photo, *GPS)
    assert read_tags(photo)["ICC-chrm:ChromaticityChannels"] == 3

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok, report.failed
    tags = read_tags(report.copied[0].copy)
    assert tags["ICC-chrm:ChromaticityChannels"] == 3
    assert [k for k in location_keys(tags) if not k.startswith("ICC-")] == []


def test_the_subject_location_in_the_frame_is_not_a_place_and_is_kept(tmp_path: Path) -> None:
    photo = make_photo(
        tmp_path / "src" / "IMG_0106.jpg", "JPEG", "-ExifIFD:SubjectLocation=24 16", *GPS
    )

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    tags = read_tags(report.copied[0].copy)
    assert tags["ExifIFD:SubjectLocation"] == "24 16"
    assert not any(k.startswith("GPS:") for k in tags)


def test_location_tags_judges_group_and_name_not_words_inside_names() -> None:
    row = {
        "SourceFile": "/x/IMG.jpg",
        "ICC-chrm:ChromaticityChannels": 3,
        "ExifIFD:SubjectLocation": "24 16",
        "ExifIFD:ISOSpeedLatitudeyyy": 100,
        "Sony:FocusLocation": "1 2 3 4",
        "Canon:TimeZoneCity": "Paris",
        "XMP-dc:Coverage": "Paris",
        "Samsung:MCCData": 208,
        "Keys:GPSCoordinates": "48 2",
        "XMP-iptcExt:LocationCreatedCity": "Paris",
        "XMP-iptcCore:CreatorPostalCode": "75007",
        "XMP:XMP-dwc:Location:DCLocality": "Paris",  # -G0:1:2: exiftool's Location group
    }
    assert location_tags(row) == [
        "XMP-dc:Coverage",
        "Samsung:MCCData",
        "Keys:GPSCoordinates",
        "XMP-iptcExt:LocationCreatedCity",
        "XMP-iptcCore:CreatorPostalCode",
        "XMP-dwc:DCLocality",
    ]


def test_a_copy_whose_thumbnail_keeps_its_gps_is_deleted_and_named(tmp_path: Path) -> None:
    photo = with_thumbnail(tmp_path / "src" / "IMG_0107.jpg", GPS)  # main image is clean
    fake = exiftool_that_cannot_write(tmp_path)

    report = export_strip_location([photo], tmp_path / "out", exiftool=str(fake))

    assert report.copied == []
    [(path, reason)] = report.failed
    assert path == photo
    assert "GPS:GPSLatitude (in the embedded image IFD1:ThumbnailImage)" in reason
    assert list((tmp_path / "out").iterdir()) == []


def test_vaultctl_export_fails_loudly_naming_the_file_and_the_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = with_thumbnail(tmp_path / "src" / "IMG_0108.jpg", GPS)
    fake = exiftool_that_cannot_write(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.parent}:{Path(EXIFTOOL or '').parent}")

    rc = vaultctl.main(["export", "--strip-location", str(photo), str(tmp_path / "out")])

    assert rc == vaultctl.EXIT_ERROR
    err = capsys.readouterr().err
    assert f"FAILED {photo}" in err and "IFD1:ThumbnailImage" in err and "GPSLatitude" in err
    assert list((tmp_path / "out").iterdir()) == []
