"""File names are bytes: a sidecar for any name the file system takes, real exiftool.

A Linux file name need not be UTF-8 (b'\\xff\\xfe-bird.jpg' from an old camera or
share); exiftool gets such paths as their raw bytes, never re-encoded, and is not
restarted over them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from sidecar_helpers import content, exiftool_json, make_photo, needs_tools

import photovault.sidecar.writer as sidecar_writer
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.writer import SidecarWriter

pytestmark = needs_tools

BIRD = os.fsdecode(b"\xff\xfe-bird.jpg")  # not UTF-8: surrogates in a str


def subjects(path: Path) -> set[str]:
    return {"|".join(k.path) for k in read_sidecar(path).keywords}


def test_a_photo_whose_name_is_not_utf8_gets_its_sidecar_with_its_keywords(
    tmp_path, writer, caplog
):
    photo = make_photo(tmp_path, BIRD)
    sidecar = tmp_path / f"{BIRD}.xmp"
    with caplog.at_level(logging.WARNING, logger="photovault.sidecar.writer"):
        result = writer.write(photo, sidecar, content(faces=()), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert os.fsencode(sidecar) in {os.fsencode(p) for p in tmp_path.iterdir()}
    assert subjects(sidecar) == {"Animals|Dog", "Places|Strand & Meer"}
    assert not [r for r in caplog.records if "restarting" in r.getMessage()]
    assert not [p for p in tmp_path.iterdir() if ".pvtmp-" in p.name]


def test_a_rewrite_of_a_sidecar_whose_name_is_not_utf8_compares_it_with_exiftool(tmp_path, writer):
    photo = make_photo(tmp_path, BIRD)
    sidecar = tmp_path / f"{BIRD}.xmp"
    assert writer.write(photo, sidecar, content(faces=()), (64, 48), 1).status == "written"
    again = writer.write(
        photo, sidecar, content(keywords=(("Animals", "Bird"),), faces=()), (64, 48), 1
    )
    assert again.status == "written", again.warnings
    assert subjects(sidecar) == {"Animals|Bird"}


def test_exiftool_reads_a_file_whose_name_is_not_utf8_by_its_raw_bytes(tmp_path, writer):
    photo = make_photo(tmp_path, BIRD)
    sidecar = tmp_path / f"{BIRD}.xmp"
    writer.write(photo, sidecar, content(faces=()), (64, 48), 1)
    data = exiftool_json(writer, sidecar)
    assert data["XMP-dc:Subject"] == ["Dog", "Strand & Meer"]


@pytest.mark.parametrize(
    "name", ["line\nbreak.jpg", " leading blank.jpg", "#hash.jpg", "-dash.jpg", "back\\slash.jpg"]
)
def test_a_name_exiftool_would_misread_as_an_argument_line_still_gets_its_sidecar(
    tmp_path, writer, name, monkeypatch
):
    photo = make_photo(tmp_path, name)
    sidecar = tmp_path / f"{name}.xmp"
    result = writer.write(photo, sidecar, content(faces=()), (64, 48), 1)
    assert result.status == "written", result.warnings
    assert subjects(sidecar) == {"Animals|Dog", "Places|Strand & Meer"}
    monkeypatch.chdir(tmp_path)  # a relative path, as given, reaches exiftool intact
    with SidecarWriter() as here:
        data = exiftool_json(here, Path(f"{name}.xmp"))
    assert data["XMP-dc:Subject"] == ["Dog", "Strand & Meer"]


def test_a_path_exiftool_cannot_be_given_is_skipped_with_the_reason_not_retried(tmp_path, writer):
    name = "line\nbreak $5.jpg"  # exiftool's C-string argument form keeps "\\$"
    photo = make_photo(tmp_path, name)
    result = writer.write(photo, tmp_path / f"{name}.xmp", content(faces=()), (64, 48), 1)
    assert result.status == "skipped"
    assert "exiftool cannot be given that path" in result.warnings[0]


def test_paths_go_to_exiftool_as_their_bytes():
    arg = sidecar_writer._arg
    assert arg(Path("/a") / BIRD) == b"/a/\xff\xfe-bird.jpg"
    assert arg("-x.xmp") == b"./-x.xmp"
    assert arg("/a/b\nc\\d") == b"#[CSTR]/a/b\\nc\\\\d"


def test_a_writer_restarted_after_close_still_reads_names_that_are_not_utf8(tmp_path):
    photo = make_photo(tmp_path, BIRD)
    sidecar = tmp_path / f"{BIRD}.xmp"
    with SidecarWriter() as w:
        assert w.write(photo, sidecar, content(faces=()), (64, 48), 1).status == "written"
    with SidecarWriter() as w:
        assert w.write(photo, sidecar, content(faces=()), (64, 48), 1).status == "unchanged"
