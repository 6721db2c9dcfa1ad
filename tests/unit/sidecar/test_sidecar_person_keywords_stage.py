"""The sidecar stage tells the daemon when a person changed a photo's keywords,
and keeps what they added through a rewrite (#14)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sidecar_helpers import make_photo, needs_tools
from test_sidecar_removed_keywords import replace_dog_with_wolf, rewrite

from photovault.catalog.store import Catalog
from photovault.config import Settings, ShareSettings
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
    catalog.store_content(
        hashlib.sha256(photo.read_bytes()).hexdigest(),
        "tags:1",
        {"width": 64, "height": 48, "orientation": 1},
        {"tags": {"tags": [{"tag": "Animals|Dog", "confidence": 0.9, "source": "tags"}]}},
        [(row.id, st.st_size, st.st_mtime_ns)],
    )
    row = catalog.get_by_id(row.id)
    told: list[list[int]] = []
    stage = SidecarStage(catalog, settings, writer=writer, on_keywords_changed=told.append)
    assert stage.write_one(row) == "written"
    yield stage, catalog, row, share / "dog.jpg.xmp", told
    catalog.close()


def test_a_replaced_keyword_read_back_is_passed_on_once_with_the_file_id(env):
    stage, catalog, row, sidecar, told = env
    assert told == []  # our own write changes nothing a person decided
    replace_dog_with_wolf(sidecar)
    stage.sidecar_changed("photos", "dog.jpg.xmp")
    stage._read_back_changed()
    assert told == [[row.id]]
    assert catalog.person_keywords(row.id) == ({"Animals|Dog"}, ["Animals|Wolf"])

    stage.read_back(row, sidecar)  # read again, nothing new: nothing to pass on
    assert told == [[row.id]]


def test_the_keywords_a_person_added_are_kept_through_a_rewrite(env):
    stage, catalog, row, sidecar, _ = env
    replace_dog_with_wolf(sidecar)
    stage.read_back(row, sidecar)
    assert rewrite(stage, catalog, row) in ("written", "unchanged")
    assert catalog.person_keywords(row.id) == ({"Animals|Dog"}, ["Animals|Wolf"])
