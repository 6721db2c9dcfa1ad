"""Place names and recognized text in the sidecar (#18 item 5, #17 item 4).

Real exiftool and exiv2 read what we write; a person's place fields are never
overwritten, whether they were there first or changed after our write.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from sidecar_helpers import (
    REAL_WORLD,
    content,
    copy_fixture,
    exiftool_json,
    exiv2_keys,
    lost,
    make_photo,
    needs_tools,
)

from photovault.results import Place
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.writer import SidecarWriter

pytestmark = needs_tools

LISBON = Place("PT", "Portugal", "Lisboa", "Lisbon")
MADRID = Place("ES", "Spain", "Comunidad de Madrid", "Madrid")
PLACE_TAGS = (
    "XMP-photoshop:City",
    "XMP-photoshop:State",
    "XMP-photoshop:Country",
    "XMP-iptcCore:CountryCode",
)
RECEIPT = "CAFÉ A BRASILEIRA\nTOTAL 12,50 €\n<tip> & thanks"


def place_of(writer: SidecarWriter, sidecar: Path) -> tuple[str | None, ...]:
    data = exiftool_json(writer, sidecar)
    return tuple(data.get(tag) for tag in PLACE_TAGS)


def exiftool_cli(sidecar: Path, *tags: str) -> dict:
    """What a user's own exiftool shows (no config of ours)."""
    out = subprocess.run(
        ["exiftool", "-j", *tags, str(sidecar)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)[0]


def person_edits(sidecar: Path, *assignments: str) -> None:
    """What a person does in another program (exiftool standing in for it)."""
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", *assignments, str(sidecar)], check=True
    )


def person_made(sidecar: Path, *assignments: str) -> None:
    """A sidecar a person made before we ever wrote one."""
    subprocess.run(["exiftool", "-q", *assignments, "-o", str(sidecar)], check=True)


def write(writer: SidecarWriter, folder: Path, place: Place | None, text: str | None = None):
    photo = folder / "IMG_1.jpg"
    if not photo.exists():
        make_photo(folder)
    sidecar = folder / "IMG_1.jpg.xmp"
    result = writer.write(photo, sidecar, replace(content(), place=place, text=text), (64, 48), 1)
    assert result.ok, result.warnings
    return result, sidecar


def test_a_photo_with_a_place_gets_the_four_location_fields_as_exiftool_and_exiv2_read_them(
    writer, tmp_path
):
    _, sidecar = write(writer, tmp_path, LISBON)

    assert place_of(writer, sidecar) == ("Lisbon", "Lisboa", "Portugal", "PT")
    shown = exiftool_cli(sidecar, "-XMP-photoshop:City", "-XMP-iptcCore:CountryCode")
    assert (shown["City"], shown["CountryCode"]) == ("Lisbon", "PT")
    exiv2 = exiv2_keys(sidecar)
    assert exiv2["Xmp.photoshop.City"][1] == "Lisbon"
    assert exiv2["Xmp.photoshop.State"][1] == "Lisboa"
    assert exiv2["Xmp.photoshop.Country"][1] == "Portugal"
    assert exiv2["Xmp.iptc.CountryCode"][1] == "PT"


def test_a_city_the_sidecar_already_had_is_kept_and_no_field_of_ours_is_added(writer, tmp_path):
    make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    sidecar.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        ' photoshop:City="Grandma\'s"/></rdf:RDF></x:xmpmeta>'
    )

    write(writer, tmp_path, LISBON)  # ours beside theirs would name two places
    assert place_of(writer, sidecar) == ("Grandma's", None, None, None)
    assert exiftool_cli(sidecar, "-XMP-photoshop:City")["City"] == "Grandma's"
    write(writer, tmp_path, MADRID)  # a new result does not touch it either
    assert place_of(writer, sidecar) == ("Grandma's", None, None, None)
    write(writer, tmp_path, None)  # nor does a place we no longer know
    assert place_of(writer, sidecar) == ("Grandma's", None, None, None)


def test_a_city_of_theirs_across_the_border_gets_no_country_of_ours(writer, tmp_path):
    make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    person_made(sidecar, "-XMP-photoshop:City=Strasbourg")

    write(writer, tmp_path, Place("DE", "Germany", "Baden-Wurttemberg", "Kehl"))
    assert place_of(writer, sidecar) == ("Strasbourg", None, None, None)


def test_a_city_of_theirs_equal_to_ours_gets_the_other_fields(writer, tmp_path):
    make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    person_made(sidecar, "-XMP-photoshop:City=lisbon")

    write(writer, tmp_path, LISBON)
    assert place_of(writer, sidecar) == ("lisbon", "Lisboa", "Portugal", "PT")


def test_a_sidecar_naming_another_country_gets_no_place_field_of_ours(writer, tmp_path):
    make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    person_made(sidecar, "-XMP-photoshop:Country=Deutschland")

    write(writer, tmp_path, LISBON)  # no Lisbon in their Germany
    assert place_of(writer, sidecar) == (None, None, "Deutschland", None)


def test_a_sidecar_naming_our_country_gets_the_other_fields(writer, tmp_path):
    make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    person_made(sidecar, "-XMP-iptcCore:CountryCode=pt")

    write(writer, tmp_path, LISBON)
    assert place_of(writer, sidecar) == ("Lisbon", "Lisboa", "Portugal", "pt")


def test_a_place_we_wrote_follows_our_result_when_it_changes(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    result, _ = write(writer, tmp_path, MADRID)

    assert result.status == "written"
    assert place_of(writer, sidecar) == ("Madrid", "Comunidad de Madrid", "Spain", "ES")
    assert exiv2_keys(sidecar)["Xmp.photoshop.City"][1] == "Madrid"


def test_a_place_no_longer_known_removes_only_our_own_fields(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    write(writer, tmp_path, Place("PT", "Portugal"))  # far from any town: no city, no region

    assert place_of(writer, sidecar) == (None, None, "Portugal", "PT")
    write(writer, tmp_path, None)
    assert place_of(writer, sidecar) == (None, None, None, None)
    assert "<photoshop:" not in sidecar.read_text()


def test_a_city_a_person_corrected_after_our_write_is_theirs_from_then_on(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    person_edits(sidecar, "-XMP-photoshop:City=Grandma's")

    result, _ = write(writer, tmp_path, MADRID)
    assert result.person_fields == ["photoshop:City"]
    # Their city beside our Madrid would name two places: ours stay as they were.
    assert place_of(writer, sidecar) == ("Grandma's", "Lisboa", "Portugal", "PT")
    # Even after they clear it again: not written back.
    person_edits(sidecar, "-XMP-photoshop:City=")
    write(writer, tmp_path, LISBON)
    assert place_of(writer, sidecar) == (None, "Lisboa", "Portugal", "PT")


def test_a_country_a_person_corrected_stops_every_change_to_our_place(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    person_edits(sidecar, "-XMP-photoshop:Country=Portuguese Republic")

    result, _ = write(writer, tmp_path, MADRID)
    assert result.person_fields == ["photoshop:Country"]
    assert place_of(writer, sidecar) == ("Lisbon", "Lisboa", "Portuguese Republic", "PT")


def test_a_place_field_a_person_removed_is_not_written_again(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    person_edits(sidecar, "-XMP-photoshop:State=", "-XMP-iptcCore:CountryCode=")

    result, _ = write(writer, tmp_path, MADRID)
    assert result.person_fields == ["photoshop:State", "Iptc4xmpCore:CountryCode"]
    assert place_of(writer, sidecar) == ("Madrid", None, "Spain", None)
    write(writer, tmp_path, LISBON)
    assert place_of(writer, sidecar) == ("Lisbon", None, "Portugal", None)


def test_after_exiv2_rewrites_the_packet_our_place_follows_our_result(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    # What digiKam does: Exiv2 re-serializes the packet, simple values as attributes.
    subprocess.run(["exiv2", "-M", "set Xmp.dc.title Trip", str(sidecar)], check=True)
    assert 'photoshop:City="Lisbon"' in sidecar.read_text()

    result, _ = write(writer, tmp_path, MADRID)
    assert result.status == "written" and result.person_fields == []
    assert place_of(writer, sidecar) == ("Madrid", "Comunidad de Madrid", "Spain", "ES")
    write(writer, tmp_path, None)
    assert place_of(writer, sidecar) == (None, None, None, None)
    assert exiftool_json(writer, sidecar)["XMP-dc:Title"] == "Trip"


def test_after_exiv2_rewrites_the_packet_a_field_changed_there_is_theirs(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON)
    subprocess.run(
        ["exiv2", "-M", "set Xmp.photoshop.State Estremadura", str(sidecar)],
        check=True,
        capture_output=True,
    )

    result, _ = write(writer, tmp_path, MADRID)
    assert result.status == "written" and result.person_fields == ["photoshop:State"]
    assert place_of(writer, sidecar) == ("Lisbon", "Estremadura", "Portugal", "PT")
    write(writer, tmp_path, None)
    assert place_of(writer, sidecar) == (None, "Estremadura", None, None)


def test_recognized_text_is_in_photovault_text_for_exiftool_and_never_in_dc_description(
    writer, tmp_path
):
    _, sidecar = write(writer, tmp_path, None, RECEIPT + "\x07")

    shown = exiftool_cli(sidecar, "-XMP-photovault:Text", "-XMP-dc:Description")
    assert shown["Text"] == RECEIPT  # the control character XML cannot carry is left out
    assert "Description" not in shown
    assert exiftool_json(writer, sidecar)["XMP-photovault:Text"] == RECEIPT
    assert exiv2_keys(sidecar)["Xmp.photovault.Text"][0] == "XmpText"


def test_a_persons_description_stays_and_text_that_is_gone_leaves_nothing_of_ours(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, None, RECEIPT)
    person_edits(sidecar, "-XMP-dc:Description=Lunch with Ana")

    write(writer, tmp_path, None, None)
    shown = exiftool_cli(sidecar, "-XMP-photovault:Text", "-XMP-dc:Description")
    assert shown.get("Description") == "Lunch with Ana"
    assert "Text" not in shown


@pytest.mark.parametrize("fixture", REAL_WORLD)
def test_place_and_text_keep_every_foreign_property_of_real_sidecars(writer, tmp_path, fixture):
    photo = make_photo(tmp_path, size=(840, 700))
    sidecar = copy_fixture(fixture, tmp_path, "IMG_1.jpg.xmp")
    before = exiftool_json(writer, sidecar)

    c = replace(content(), place=LISBON, text=RECEIPT)
    assert writer.write(photo, sidecar, c, (840, 700), 1).status == "written"
    after = exiftool_json(writer, sidecar)
    skip = ("SourceFile", "File:", "System:", "ExifTool:", "XMP-photovault:")
    kept = {k: v for k, v in before.items() if not k.startswith(skip)}
    assert lost(kept, after) is None
    if any(tag in before for tag in PLACE_TAGS):  # Lightroom's Berkeley, California, US
        assert [after.get(t) for t in PLACE_TAGS] == [before.get(t) for t in PLACE_TAGS]
    else:
        assert [after[t] for t in PLACE_TAGS] == ["Lisbon", "Lisboa", "Portugal", "PT"]
    assert read_sidecar(sidecar).ok


def test_the_reader_tells_our_place_fields_from_a_persons_and_reads_our_text(writer, tmp_path):
    _, sidecar = write(writer, tmp_path, LISBON, RECEIPT)
    person_edits(sidecar, "-XMP-photoshop:City=Grandma's")

    found = read_sidecar(sidecar)
    assert found.place == {
        "photoshop:City": ("Grandma's", False),
        "photoshop:State": ("Lisboa", True),
        "photoshop:Country": ("Portugal", True),
        "Iptc4xmpCore:CountryCode": ("PT", True),
    }
    assert found.text == RECEIPT
