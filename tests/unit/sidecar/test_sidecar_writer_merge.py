"""Merging into sidecars of other programs: nothing foreign lost, ours readable.

Every real-world fixture and our own trap cases are checked with two independent
readers: `exiftool -j -struct -G1` and `exiv2 -PX` of the file before and after.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sidecar_helpers import (
    OWN_CASES,
    REAL_WORLD,
    as_list,
    content,
    copy_fixture,
    exiftool_json,
    exiv2_keys,
    lost,
    make_photo,
    needs_tools,
)

from photovault.sidecar.reader import read_sidecar

pytestmark = needs_tools

ALL_CASES = REAL_WORLD + OWN_CASES
SKIP_GROUPS = ("System:", "File:", "ExifTool:", "SourceFile")
OURS = ("XMP-photovault:",)
MANAGED = (
    "XMP-dc:Subject",
    "XMP-lr:HierarchicalSubject",
    "XMP-digiKam:TagsList",
    "XMP-mwg-rs:RegionInfo",
    "XMP-MP:RegionInfoMP",
)


def _write(writer, tmp_path: Path, fixture: str | None, **kw):
    photo = make_photo(tmp_path, size=(840, 700))
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    original = None
    if fixture:
        copy_fixture(fixture, tmp_path, "IMG_1.jpg.xmp")
        original = copy_fixture(fixture, tmp_path, "original.xmp")
    result = writer.write(photo, sidecar, content(**kw), (840, 700), 1)
    return result, sidecar, original


@pytest.mark.parametrize("fixture", ALL_CASES)
def test_merge_keeps_every_foreign_property_as_exiftool_sees_it(writer, tmp_path, fixture):
    result, sidecar, original = _write(writer, tmp_path, fixture)
    assert result.status == "written", result.warnings
    before, after = exiftool_json(writer, original), exiftool_json(writer, sidecar)
    for tag, value in before.items():
        if tag.startswith(SKIP_GROUPS) or tag == "XMP-x:XMPToolkit":
            continue
        assert tag in after, f"{tag} lost"
        if tag in MANAGED:  # lists may only grow
            assert lost(value, after[tag]) is None, (tag, lost(value, after[tag]))
        else:
            assert after[tag] == value, tag
    assert after.get("XMP-x:XMPToolkit") == before.get("XMP-x:XMPToolkit")
    assert after.get("ExifTool:Warning") == before.get("ExifTool:Warning")


@pytest.mark.parametrize("fixture", ALL_CASES)
def test_merge_keeps_every_foreign_property_as_exiv2_sees_it(writer, tmp_path, fixture):
    result, sidecar, original = _write(writer, tmp_path, fixture)
    assert result.status == "written", result.warnings
    before, after = exiv2_keys(original), exiv2_keys(sidecar)
    assert before, "exiv2 read nothing from the fixture"
    for key, (typ, value) in before.items():
        assert key in after, f"{key} lost"
        if typ in ("XmpBag", "XmpSeq"):
            items = [i for i in value.split(", ") if i]
            assert all(i in after[key][1] for i in items), key
        elif key.startswith("Xmp.mwg-rs.Regions/mwg-rs:RegionList") or key.startswith(
            "Xmp.MP.RegionInfo/MPRI:Regions"
        ):
            assert after[key] == (typ, value), key  # foreign regions keep their index
        else:
            assert after[key] == (typ, value), key


@pytest.mark.parametrize("fixture", [*ALL_CASES, None])
def test_independent_readers_see_our_keywords_and_regions(writer, tmp_path, fixture):
    result, sidecar, _ = _write(writer, tmp_path, fixture)
    assert result.status == "written", result.warnings
    data = exiftool_json(writer, sidecar)
    assert {"Dog", "Strand & Meer"} <= set(as_list(data["XMP-dc:Subject"]))
    assert {"Animals|Dog", "Places|Strand & Meer"} <= set(
        as_list(data["XMP-lr:HierarchicalSubject"])
    )
    assert {"Animals/Dog", "Places/Strand & Meer"} <= set(as_list(data["XMP-digiKam:TagsList"]))
    regions = as_list(data["XMP-mwg-rs:RegionInfo"]["RegionList"])
    zoe = [r for r in regions if r.get("Name") == "Zoë Ångström"]
    assert len(zoe) == 1 and zoe[0]["Type"] == "Face"
    assert zoe[0]["Area"]["Unit"] == "normalized"
    assert [float(zoe[0]["Area"][c]) for c in "XYWH"] == pytest.approx([0.2, 0.35, 0.2, 0.3])
    unnamed = [r for r in regions if "Name" not in r and r.get("Type") == "Face"]
    assert len(unnamed) == 1
    dims = data["XMP-mwg-rs:RegionInfo"]["AppliedToDimensions"]
    assert float(dims["W"]) > 0 and float(dims["H"]) > 0
    mp = as_list(data["XMP-MP:RegionInfoMP"]["Regions"])
    assert {"PersonDisplayName": "Zoë Ångström", "Rectangle": "0.1, 0.2, 0.2, 0.3"} in mp
    assert {"Rectangle": "0.6, 0.2, 0.1, 0.1"} in mp

    exiv2 = exiv2_keys(sidecar)
    assert "Dog" in exiv2["Xmp.dc.subject"][1]
    assert "Animals|Dog" in exiv2["Xmp.lr.hierarchicalSubject"][1]
    names = [
        v
        for key, (_t, v) in exiv2.items()
        if key.startswith("Xmp.mwg-rs.Regions/mwg-rs:RegionList") and key.endswith("mwg-rs:Name")
    ]
    assert "Zoë Ångström" in names


@pytest.mark.parametrize("fixture", [*ALL_CASES, None])
def test_writing_the_same_content_again_changes_nothing(writer, tmp_path, fixture):
    _, sidecar, _ = _write(writer, tmp_path, fixture)
    first = sidecar.read_bytes()
    photo = tmp_path / "IMG_1.jpg"
    again = writer.write(photo, sidecar, content(), (840, 700), 1)
    assert again.status == "unchanged"
    assert sidecar.read_bytes() == first


@pytest.mark.parametrize("fixture", ["digikam-full-portrait.xmp", "exempi-traps.xmp", None])
def test_reanalysis_replaces_our_entries_without_duplicates(writer, tmp_path, fixture):
    _, sidecar, original = _write(writer, tmp_path, fixture)
    photo = tmp_path / "IMG_1.jpg"
    new = content(
        keywords=(("Animals", "Cat"),),
        faces=(((0.12, 0.22, 0.2, 0.3), "Zoë Ångström", "face-1"),),
        analyzed_at="2024-06-01T10:00:00+00:00",
    )
    assert writer.write(photo, sidecar, new, (840, 700), 1).status == "written"
    data = exiftool_json(writer, sidecar)
    subjects = as_list(data["XMP-dc:Subject"])
    assert "Cat" in subjects and "Dog" not in subjects
    assert len(subjects) == len(set(subjects))
    if original is not None:  # the person's keywords are all still there
        for tag in ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject"):
            assert lost(exiftool_json(writer, original).get(tag), data.get(tag)) is None
    regions = as_list(data["XMP-mwg-rs:RegionInfo"]["RegionList"])
    ours = [r for r in regions if "Extensions" in r]
    assert len(ours) == 1 and ours[0]["Name"] == "Zoë Ångström"
    mp = as_list(data["XMP-MP:RegionInfoMP"]["Regions"])
    assert sum(r.get("PersonDisplayName") == "Zoë Ångström" for r in mp) == 1
    assert "0.6, 0.2, 0.1, 0.1" not in [r.get("Rectangle") for r in mp]


def test_a_keyword_the_person_had_is_not_claimed_and_survives_reanalysis(writer, tmp_path):
    _, sidecar, _ = _write(
        writer, tmp_path, "exempi-traps.xmp", keywords=(("Places", "Strand"), ("Animals", "Dog"))
    )
    data = exiftool_json(writer, sidecar)
    assert as_list(data["XMP-dc:Subject"]).count("Strand") == 1
    assert "Strand" not in as_list(data.get("XMP-photovault:Subjects"))
    writer.write(tmp_path / "IMG_1.jpg", sidecar, content(keywords=()), (840, 700), 1)
    data = exiftool_json(writer, sidecar)
    assert as_list(data["XMP-dc:Subject"]) == ["Strand", "Familie Müller"]


def test_a_face_the_person_already_tagged_is_not_duplicated(writer, tmp_path):
    # Marie Curie's box in digikam-full-portrait.xmp (top-left form)
    marie = (0.311905, 0.208571, 0.113095, 0.198571)
    result, sidecar, _ = _write(
        writer, tmp_path, "digikam-full-portrait.xmp", faces=((marie, None, "face-9"),)
    )
    assert result.faces_skipped == 1 and result.faces_written == 0
    regions = as_list(exiftool_json(writer, sidecar)["XMP-mwg-rs:RegionInfo"]["RegionList"])
    assert [r.get("Name") for r in regions] == ["Marie Curie", "Pierre Curie"]


def test_a_name_given_elsewhere_survives_reanalysis_until_adopted(writer, tmp_path):
    _, sidecar, _ = _write(writer, tmp_path, None)
    text = sidecar.read_text()
    sidecar.write_text(
        text.replace(
            "<mwg-rs:Type>Face</mwg-rs:Type><mwg-rs:Area",
            "<mwg-rs:Type>Face</mwg-rs:Type><mwg-rs:Name>Ada</mwg-rs:Name><mwg-rs:Area",
            1,
        )
    )
    photo = tmp_path / "IMG_1.jpg"
    writer.write(photo, sidecar, content(analyzed_at="2024-07-01T00:00:00Z"), (840, 700), 1)
    faces = {f.face_id: f for f in read_sidecar(sidecar).faces if f.source == "mwg"}
    assert faces["face-2"].name == "Ada" and faces["face-2"].written_name is None


def test_a_large_keyword_set_with_utf8_names_is_written_whole(writer, tmp_path):
    keywords = tuple(("Orte", f"Straße Nº{i} — 東京 ✓") for i in range(600))
    result, sidecar, _ = _write(writer, tmp_path, "lightroom61-IMG_5910.jpg.xmp", keywords=keywords)
    assert result.status == "written"
    subjects = as_list(exiftool_json(writer, sidecar)["XMP-dc:Subject"])
    assert len(subjects) == 3 + 600
    assert "Straße Nº599 — 東京 ✓" in subjects
    assert "Straße Nº0 — 東京 ✓" in exiv2_keys(sidecar)["Xmp.dc.subject"][1]


def test_after_exiv2_rewrites_the_packet_a_name_is_adopted_and_kept(writer, tmp_path):
    import subprocess

    from photovault.sidecar.reader import adopted_names

    _, sidecar, _ = _write(writer, tmp_path, "digikam-full-portrait.xmp")
    before = read_sidecar(sidecar)
    # what digiKam does: Exiv2 re-serializes the whole packet in its own style
    subprocess.run(
        [
            "exiv2",
            "-M",
            "set Xmp.mwg-rs.Regions/mwg-rs:RegionList[4]/mwg-rs:Name Ada",
            str(sidecar),
        ],
        check=True,
        capture_output=True,
    )
    after = read_sidecar(sidecar)
    assert [(a.face_id, a.name) for a in adopted_names(before, after)] == [("face-2", "Ada")]
    result = writer.write(
        tmp_path / "IMG_1.jpg",
        sidecar,
        content(keywords=(("Animals", "Cat"),), analyzed_at="2025-01-01"),
        (840, 700),
        1,
    )
    assert result.status == "written", result.warnings
    again = read_sidecar(sidecar)
    assert [f.name for f in again.faces if f.source == "mwg"] == [
        "Marie Curie",
        "Pierre Curie",
        "Zoë Ångström",
        "Ada",
    ]
    assert again.subjects == ["Marie Curie", "Pierre Curie", "Cat"]
