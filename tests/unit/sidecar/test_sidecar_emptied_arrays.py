"""A keyword list our splice empties is cut out whole, never left as an empty array.

An ``<rdf:Bag>`` holding only white space reads in exiftool as a value of white
space ("\\n   "), which other programs then show as a keyword. Real exiftool.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sidecar_helpers import content, copy_fixture, exiftool_json, make_photo, needs_tools

from photovault.sidecar.reader import read_sidecar

pytestmark = needs_tools

KEYWORD_TAGS = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList")
EMPTY_ARRAY = re.compile(rb"<rdf:(Bag|Seq)>\s*</rdf:\1>")
NO_FACES = {"faces": ()}


def keyword_values(writer, sidecar: Path) -> dict[str, object]:
    data = exiftool_json(writer, sidecar)
    return {tag: data[tag] for tag in KEYWORD_TAGS if tag in data}


def test_removing_every_flat_keyword_leaves_no_empty_keyword_list_behind(tmp_path, writer):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    assert writer.write(photo, sidecar, content(**NO_FACES), (64, 48), 1).status == "written"
    subprocess.run(  # a person removes every keyword, in a program that edits dc:subject only
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=", str(sidecar)], check=True
    )
    result = writer.write(photo, sidecar, content(**NO_FACES), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert sorted(result.rejected) == [("Animals", "Dog"), ("Places", "Strand & Meer")]
    assert keyword_values(writer, sidecar) == {}
    data = sidecar.read_bytes()
    assert not EMPTY_ARRAY.search(data)
    assert b"hierarchicalSubject" not in data and b"TagsList" not in data
    assert read_sidecar(sidecar).ok


def test_keywords_we_stop_writing_take_their_emptied_lists_with_them(tmp_path, writer):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    writer.write(photo, sidecar, content(**NO_FACES), (64, 48), 1)
    result = writer.write(photo, sidecar, content(keywords=(), **NO_FACES), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert keyword_values(writer, sidecar) == {}
    assert not EMPTY_ARRAY.search(sidecar.read_bytes())


def test_a_list_holding_a_persons_keyword_keeps_it_when_ours_go(tmp_path, writer):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    writer.write(photo, sidecar, content(**NO_FACES), (64, 48), 1)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=Grandma", str(sidecar)],
        check=True,
    )
    result = writer.write(photo, sidecar, content(keywords=(), **NO_FACES), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert keyword_values(writer, sidecar) == {"XMP-dc:Subject": ["Grandma"]}
    assert not EMPTY_ARRAY.search(sidecar.read_bytes())


def test_an_empty_list_another_program_wrote_is_left_as_it_was(tmp_path, writer):
    photo = make_photo(tmp_path)
    sidecar = copy_fixture("darktable-bibble-_27A1417.CR2.xmp", tmp_path)
    before = sidecar.read_bytes()
    assert before.count(b"<rdf:Seq/>") == 3
    result = writer.write(photo, sidecar, content(keywords=(), **NO_FACES), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert sidecar.read_bytes().count(b"<rdf:Seq/>") == 3


def test_a_foreign_empty_list_we_filled_and_emptied_again_is_cut_not_left_blank(tmp_path, writer):
    photo = make_photo(tmp_path)
    sidecar = copy_fixture("darktable-bibble-_27A1417.CR2.xmp", tmp_path)
    assert writer.write(photo, sidecar, content(**NO_FACES), (64, 48), 1).status == "written"
    assert "Dog" in keyword_values(writer, sidecar)["XMP-dc:Subject"]
    result = writer.write(photo, sidecar, content(keywords=(), **NO_FACES), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert keyword_values(writer, sidecar) == {}
    assert not EMPTY_ARRAY.search(sidecar.read_bytes())
