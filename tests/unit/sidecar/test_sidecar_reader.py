"""Reading sidecars back: keywords, faces, ownership, bad input, adopted names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sidecar_helpers import FIXTURES, copy_fixture
from sidecar_helpers import content as make_content

from photovault.sidecar import reader as reader_mod
from photovault.sidecar.merge import merge
from photovault.sidecar.rdf import XmpSyntaxError, find_rdf, parse_xml, properties
from photovault.sidecar.reader import adopted_names, read_sidecar


def test_digikam_keywords_and_named_regions_are_read():
    result = read_sidecar(FIXTURES / "digikam-full-portrait.xmp")
    assert result.ok and result.exists
    assert result.subjects == ["Marie Curie", "Pierre Curie"]
    assert ("People", "Marie Curie") in [k.path for k in result.keywords]
    mwg = {f.name: f for f in result.faces if f.source == "mwg"}
    assert set(mwg) == {"Marie Curie", "Pierre Curie"}
    # centre 0.368452/0.307857, size 0.113095x0.198571 -> top-left in orientation 1
    assert mwg["Marie Curie"].box == pytest.approx(
        (0.311905, 0.208571, 0.113095, 0.198571), abs=1e-5
    )
    assert not any(f.ours for f in result.faces)
    assert result.applied_to_dimensions == (840, 700)


def test_microsoft_regions_are_read_as_faces():
    result = read_sidecar(FIXTURES / "microsoft-mp-regions.xmp")
    assert [(f.name, f.source) for f in result.faces] == [("Cara", "mp")]
    assert result.faces[0].box == pytest.approx((0.3, 0.2, 0.1, 0.15))


def test_region_without_unit_is_read_as_normalized_with_a_warning():
    result = read_sidecar(FIXTURES / "lightroom61-IMG_5910.jpg.xmp")
    assert [f.name for f in result.faces] == ["Alvin the Squirrel"]
    assert any("unit missing" in w for w in result.warnings)


def test_pixel_regions_are_converted_and_broken_ones_reported():
    result = read_sidecar(FIXTURES / "pixel-regions.xmp")
    faces = {f.name: f for f in result.faces}
    assert faces["Pixel Person"].box == pytest.approx((0.45, 0.425, 0.1, 0.15))
    assert faces["No Size"].box is None
    assert faces["Rex"].type == "Pet"
    assert any("pixel units" in w for w in result.warnings)
    assert any("No Size" in w and "missing" in w for w in result.warnings)


def test_faces_are_returned_in_the_oriented_frame():
    upright = read_sidecar(FIXTURES / "microsoft-mp-regions.xmp", orientation=6)
    # stored (0.3, 0.2, 0.1, 0.15) rotated 90° clockwise for display
    assert upright.faces[0].box == pytest.approx((1 - 0.2 - 0.15, 0.3, 0.15, 0.1))


def test_missing_sidecar_is_not_a_problem(tmp_path: Path):
    result = read_sidecar(tmp_path / "nope.xmp")
    assert result.ok and not result.exists and result.faces == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF", "not valid XMP"),
        (b"", "empty"),
        ("<?xml version='1.0' encoding='UTF-16'?><x/>".encode("utf-16"), "UTF-16"),
        (b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>", "DOCTYPE"),
        (b"<html><body>not xmp</body></html>", "no rdf:RDF"),
    ],
)
def test_bad_sidecars_give_a_problem_instead_of_raising(tmp_path: Path, data, expected):
    path = tmp_path / "bad.xmp"
    path.write_bytes(data)
    result = read_sidecar(path)
    assert not result.ok and expected in (result.problem or "")


def test_huge_sidecar_is_not_parsed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(reader_mod, "MAX_SIDECAR_BYTES", 1000)
    path = copy_fixture("darktable-bibble-_27A1417.CR2.xmp", tmp_path)
    result = read_sidecar(path)
    assert not result.ok and "limit" in (result.problem or "")


def test_utf8_bom_sidecar_is_read(tmp_path: Path):
    path = tmp_path / "bom.xmp"
    path.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "microsoft-mp-regions.xmp").read_bytes())
    result = read_sidecar(path)
    assert result.ok and [f.name for f in result.faces] == ["Cara"]


def test_all_rdf_spellings_of_a_struct_give_the_same_value():
    ns = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://example.com/e/" '
    forms = [
        f'<rdf:RDF {ns}><rdf:Description><e:s rdf:parseType="Resource"><e:a>1</e:a></e:s>'
        "</rdf:Description></rdf:RDF>",
        f'<rdf:RDF {ns}><rdf:Description><e:s><rdf:Description e:a="1"/></e:s>'
        "</rdf:Description></rdf:RDF>",
        f'<rdf:RDF {ns}><rdf:Description><e:s e:a="1"/></rdf:Description></rdf:RDF>',
    ]
    values = [properties(find_rdf(parse_xml(f.encode()))) for f in forms]
    assert values[0] == values[1] == values[2]


def test_parse_errors_name_the_problem():
    with pytest.raises(XmpSyntaxError, match="malformed"):
        parse_xml(b"<a><b></a>")


def _written(tmp_path: Path, **kw) -> Path:
    path = tmp_path / "IMG_1.jpg.xmp"
    path.write_bytes(merge(None, make_content(**kw), (64, 48), 1).data)
    return path


def test_our_entries_are_marked_as_ours(tmp_path: Path):
    result = read_sidecar(_written(tmp_path))
    assert {k.path for k in result.keywords if k.ours} == {
        ("Animals", "Dog"),
        ("Places", "Strand & Meer"),
    }
    ours = [f for f in result.faces if f.ours and f.source == "mwg"]
    assert {f.face_id for f in ours} == {"face-1", "face-2"}
    assert all(f.name == f.written_name for f in ours)
    assert adopted_names(None, result) == []


def test_a_name_given_in_another_program_is_adopted_by_face_id(tmp_path: Path):
    path = _written(tmp_path)
    before = read_sidecar(path)
    # digiKam-like edit: the unnamed region gets a name, our Extensions survive
    text = path.read_text()
    text = text.replace(
        "<mwg-rs:Type>Face</mwg-rs:Type><mwg-rs:Area",
        "<mwg-rs:Type>Face</mwg-rs:Type><mwg-rs:Name>Ada</mwg-rs:Name><mwg-rs:Area",
        1,
    )
    path.write_text(text)
    adoptions = adopted_names(before, read_sidecar(path))
    assert [(a.face_id, a.name, a.matched_by) for a in adoptions] == [("face-2", "Ada", "face_id")]


def test_a_name_is_adopted_by_overlap_when_extensions_were_dropped(tmp_path: Path):
    path = _written(tmp_path)
    before = read_sidecar(path)
    after = dataclasses.replace(
        before,
        faces=[
            dataclasses.replace(f, name="Grace", face_id=None, ours=False, written_name=None)
            if f.face_id == "face-2"
            else f
            for f in before.faces
        ],
    )
    adoptions = adopted_names(before, after)
    assert [(a.face_id, a.name, a.matched_by) for a in adoptions] == [
        ("face-2", "Grace", "overlap")
    ]
