"""Named people are never merged by clustering; `vaultctl people suggest` lists likely
merges, with a contact sheet, and a person's merge settles them.

Real photos of Barack Obama (tests/fixtures/faces/labelled) with a strict
clustering distance (0.3), so his faces form two people; once one of them is
named, the other is suggested as the same person.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from helpers.labelled_faces import LABELLED, wait_people_complete

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

PHOTOS = [
    "obama-1.jpg",
    "obama-3.jpg",
    "obama-5.jpg",
    "obama-6-partial.jpg",
    "obama-7-partial.jpg",
    "group-obama_biden-2.jpg",
]
STRICT = "[faces]\ncluster_distance = 0.3\njoin_distance = 0.3\nmin_cluster_faces = 2\n"


def test_a_likely_merge_with_a_named_person_is_suggested_never_made(vault_factory, tmp_path):
    share = tmp_path / "photos"
    share.mkdir()
    for name in PHOTOS:
        shutil.copy(LABELLED / name, share / name)
    vault = vault_factory(analyzers=["metadata", "faces"], extra=STRICT)
    wait_people_complete(vault, len(PHOTOS))
    listed = json.loads(vault.ctl("people", "list", "--json").stdout)
    assert len(listed) == 2, listed  # one man, two people at this distance
    big, small = listed
    assert vault.ctl("people", "suggest", check=False).returncode == 1  # nothing named yet

    vault.ctl("people", "name", str(big["id"]), "Barack Obama")
    wait_people_complete(vault, len(PHOTOS))
    (found,) = json.loads(vault.ctl("people", "suggest", "--json").stdout)
    assert {found["a"]["id"], found["b"]["id"]} == {big["id"], small["id"]}
    assert found["distance"] <= 0.36
    assert {f["person_id"] for f in found["faces"]} == {big["id"], small["id"]}
    assert all(Path(f["path"]).parent == share for f in found["faces"])
    sheet = tmp_path / "suggest.jpg"
    out = vault.ctl("people", "suggest", "--sheet", str(sheet)).stdout
    assert f"vaultctl people merge {found['a']['id']} {found['b']['id']}" in out
    assert sheet.stat().st_size > 1000

    # Passes leave both people as they are; the person's merge settles it.
    listed = {p["id"]: p for p in json.loads(vault.ctl("people", "list", "--json").stdout)}
    assert set(listed) == {big["id"], small["id"]}
    assert listed[big["id"]]["name"] == "Barack Obama" and listed[small["id"]]["name"] is None
    vault.ctl("people", "merge", str(big["id"]), str(small["id"]))
    wait_people_complete(vault, len(PHOTOS))
    (merged,) = json.loads(vault.ctl("people", "list", "--json").stdout)
    assert merged["name"] == "Barack Obama" and merged["faces"] == big["faces"] + small["faces"]
    assert vault.ctl("people", "suggest", check=False).returncode == 1
