"""A keyword of ours that a person removed from a sidecar is a decision: remembered."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from sidecar_helpers import content, exiftool_json, make_photo, needs_tools

from photovault.catalog.store import Catalog, FileRow
from photovault.config import Settings, ShareSettings
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.stage import SidecarStage

pytestmark = needs_tools


@pytest.fixture
def env(tmp_path: Path, writer):
    share = tmp_path / "photos"
    share.mkdir()
    settings = Settings(
        state_dir=tmp_path / "state", shares=[ShareSettings(name="photos", path=share)]
    )
    catalog = Catalog(settings.catalog_path)
    photo = make_photo(share, "dog.jpg")
    st = photo.stat()
    catalog.observe("photos", "dog.jpg", st.st_size, st.st_mtime_ns)
    (row,) = catalog.claim(1)
    tags = ["Animals|Dog", "Places|Beach"]
    catalog.store_content(
        hashlib.sha256(photo.read_bytes()).hexdigest(),
        "tags:1",
        {"width": 64, "height": 48, "orientation": 1},
        {"tags": {"tags": [{"tag": t, "confidence": 0.9, "source": "tags"} for t in tags]}},
        [(row.id, st.st_size, st.st_mtime_ns)],
    )
    row = catalog.get_by_id(row.id)
    stage = SidecarStage(catalog, settings, writer=writer)
    assert stage.write_one(row) == "written"
    yield stage, catalog, row, share / "dog.jpg.xmp"
    catalog.close()


def replace_dog_with_wolf(sidecar: Path) -> None:
    """What a person does in another program (exiftool standing in for digiKam)."""
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-XMP-dc:Subject-=Dog",
            "-XMP-dc:Subject+=Wolf",
            "-XMP-lr:HierarchicalSubject-=Animals|Dog",
            "-XMP-lr:HierarchicalSubject+=Animals|Wolf",
            "-XMP-digiKam:TagsList-=Animals/Dog",
            "-XMP-digiKam:TagsList+=Animals/Wolf",
            str(sidecar),
        ],
        check=True,
    )


def keywords(writer, sidecar: Path) -> set[str]:
    data = exiftool_json(writer, sidecar)
    out = set()
    for tag in ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList"):
        value = data.get(tag, [])
        out.update(value if isinstance(value, list) else [value])
    return out


def rewrite(stage: SidecarStage, catalog: Catalog, row: FileRow) -> str:
    """`vaultctl sidecars rewrite`: forget every record, write again."""
    catalog.reset_sidecars(None)
    assert [r.id for r in catalog.sidecar_work(10)] == [row.id]
    return stage.write_one(row)


def test_a_replaced_keyword_read_back_never_comes_back_on_rewrite(env, writer):
    stage, catalog, row, sidecar = env
    replace_dog_with_wolf(sidecar)
    stage.sidecar_changed("photos", "dog.jpg.xmp")  # the watcher saw the change
    stage._read_back_changed()

    rewrite(stage, catalog, row)
    found = keywords(writer, sidecar)
    assert {"Wolf", "Animals|Wolf", "Animals/Wolf", "Beach", "Places|Beach"} <= found
    assert not {"Dog", "Animals|Dog", "Animals/Dog"} & found
    assert catalog.rejected_keywords(row.id) == {"Animals|Dog"}

    sidecar.unlink()  # even a brand-new sidecar (say, after a naming change) stays without it
    assert rewrite(stage, catalog, row) == "written"
    found = keywords(writer, sidecar)
    assert "Beach" in found and not {"Dog", "Animals|Dog", "Animals/Dog"} & found


def test_a_removal_made_while_vaultd_was_not_watching_is_seen_by_the_next_write(env, writer):
    stage, catalog, row, sidecar = env
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject-=Dog", str(sidecar)], check=True
    )  # only the flat keyword, as Lightroom's list
    assert rewrite(stage, catalog, row) == "written"
    found = keywords(writer, sidecar)
    assert not {"Dog", "Animals|Dog", "Animals/Dog"} & found and "Beach" in found
    catalog.reset_sidecars(None)
    assert catalog.rejected_keywords(row.id) == {"Animals|Dog"}


def test_the_reader_names_the_keywords_of_ours_a_person_removed_and_only_those(tmp_path, writer):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    writer.write(photo, sidecar, content(), (64, 48), 1)
    result = writer.write(photo, sidecar, content(keywords=(("Animals", "Dog"),)), (64, 48), 1)
    assert result.status == "written"  # a keyword we stop writing is no removal
    assert read_sidecar(sidecar).removed == []
    replace_dog_with_wolf(sidecar)
    assert read_sidecar(sidecar).removed == [("Animals", "Dog")]
