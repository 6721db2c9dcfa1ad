"""export --strip-location and the place fields our sidecars carry (#18 item 5).

A sidecar we wrote (place names, and what our namespace recorded of them) is
embedded whole into a photo's XMP, as a person may do with exiftool; the copy
must keep none of it, read back by the real exiftool without our config, while
the recognized text (no location) stays. The sidecar itself is never copied.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from photovault.ops.export import export_strip_location
from photovault.results import Place
from photovault.sidecar.model import Keyword, SidecarContent
from photovault.sidecar.writer import CONFIG_PATH, SidecarWriter

from .conftest import EXIFTOOL, location_keys, make_photo, needs_exiftool, read_tags

pytestmark = needs_exiftool

PLACE_TAGS = {
    "XMP-photoshop:City",
    "XMP-photoshop:State",
    "XMP-photoshop:Country",
    "XMP-iptcCore:CountryCode",
    "XMP-iptcCore:Location",
    "XMP-iptcExt:LocationShownCity",
    "XMP-iptcExt:LocationCreatedCountryName",
    "XMP-photovault:WrittenCity",
    "XMP-photovault:WrittenState",
    "XMP-photovault:WrittenCountry",
    "XMP-photovault:WrittenCountryCode",
}


def photo_with_our_sidecar_embedded(folder: Path) -> tuple[Path, Path]:
    photo = make_photo(folder / "IMG_2001.jpg")
    sidecar = folder / "IMG_2001.jpg.xmp"
    content = SidecarContent(
        keywords=(Keyword(("Places", "Cafe"), 0.8, "tags"),),
        place=Place("PT", "Portugal", "Lisboa", "Lisbon"),
        text="A BRASILEIRA\nTOTAL 12,50",
    )
    with SidecarWriter() as writer:
        assert writer.write(photo, sidecar, content, (48, 32), 1).status == "written"
    assert EXIFTOOL is not None
    subprocess.run(
        [
            EXIFTOOL,
            "-config",
            str(CONFIG_PATH),
            "-q",
            "-overwrite_original",
            "-XMP-iptcCore:Location=Chiado",
            "-XMP-iptcExt:LocationShownCity=Lisbon",
            "-XMP-iptcExt:LocationCreatedCountryName=Portugal",
            str(sidecar),
        ],
        check=True,
    )
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", f"-xmp<={sidecar}", str(photo)], check=True
    )
    return photo, sidecar


def test_place_fields_of_an_embedded_sidecar_of_ours_do_not_reach_the_copy(
    tmp_path: Path,
) -> None:
    photo, _ = photo_with_our_sidecar_embedded(tmp_path / "src")
    before = read_tags(photo)
    assert set(before) >= PLACE_TAGS  # the original really carries every one of them

    report = export_strip_location([photo], tmp_path / "out")

    assert report.ok
    tags = read_tags(report.copied[0].copy)
    assert not PLACE_TAGS & set(tags)
    assert location_keys(tags) == []
    assert tags["XMP-photovault:Text"] == "A BRASILEIRA\nTOTAL 12,50"  # text is no location
    assert tags["XMP-dc:Subject"] == "Cafe"
    # The original is untouched (reading it moves only its access time).
    after = read_tags(photo)
    assert {k: v for k, v in after.items() if k != "System:FileAccessDate"} == {
        k: v for k, v in before.items() if k != "System:FileAccessDate"
    }


def test_the_sidecar_with_the_place_fields_is_not_exported(tmp_path: Path) -> None:
    photo, sidecar = photo_with_our_sidecar_embedded(tmp_path / "src")

    report = export_strip_location([photo.parent], tmp_path / "out")

    assert [f.source for f in report.copied] == [photo]
    assert [p for p, _ in report.skipped] == [sidecar]
    assert list((tmp_path / "out").rglob("*.xmp")) == []
