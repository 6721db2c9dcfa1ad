"""Sidecars under faults, end to end: real vaultd, real tagger, real exiftool (#14).

One photo's trouble stays with that photo; a crash's leftovers are cleaned up; a
linked sidecar never leaks; a keyword a person removed stays removed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers.vault import VaultProcess

from .test_sidecars import FIXTURES, as_list, cat_jpeg, exiftool_json, wait_sidecar

SECRET = "PIN-4711-only-root-may-read-this"


@pytest.fixture
def tagger_vault(vault_factory, real_tagger_store):
    def start(**kw) -> VaultProcess:
        return vault_factory(models_from=real_tagger_store, analyzers=["metadata", "tagger"], **kw)

    return start


def test_a_name_too_long_for_its_sidecar_gets_one_in_the_mirror_and_later_photos_theirs(
    tmp_path: Path, tagger_vault
) -> None:
    photos = tmp_path / "photos"
    long_photo = cat_jpeg(photos / ("c" * 251 + ".jpg"))  # 255 bytes: NAME.xmp cannot exist
    vault = tagger_vault()
    vault.wait_idle(expect_done=1, timeout=120)
    others = [cat_jpeg(photos / f"later{i}.jpg") for i in range(2)]
    vault.wait_idle(expect_done=3, timeout=120)
    for photo in others:
        assert wait_sidecar(vault, photo)["sidecar"] == f"{photo}.xmp"
    shown = wait_sidecar(vault, long_photo)
    assert shown["sidecar_state"] == "written"
    mirrored = Path(shown["sidecar"])
    assert mirrored.parent == tmp_path / "state" / "sidecars" / "photos"
    assert "259 bytes" in shown["sidecar_warning"] and "mirror tree" in shown["sidecar_warning"]
    assert "Animals|Cat" in as_list(exiftool_json(mirrored)["XMP-lr:HierarchicalSubject"])
    assert "keyword  Animals|Cat" in vault.ctl("sidecar", str(long_photo)).stdout
    warnings = vault.status()["sidecar_warnings"]
    assert any(w["path"] == str(mirrored) and "mirror tree" in w["warning"] for w in warnings)
    assert sorted(p.name for p in photos.iterdir() if p.name.endswith(".xmp")) == [
        "later0.jpg.xmp",
        "later1.jpg.xmp",
    ]


def test_temp_files_a_crash_left_are_removed_at_start_and_look_alikes_kept(
    tmp_path: Path, tagger_vault
) -> None:
    photos = tmp_path / "photos"
    photo = cat_jpeg(photos / "2024" / "cat.jpg")
    ours = [
        photos / "2024" / ".cat.jpg.xmp.pvtmp-0123456789ab.xmp",
        photos / ".gone.jpg.xmp.pvtmp-fedcba987654.xmp",
    ]
    theirs = [
        photos / "2024" / ".cat.jpg.xmp.pvtmp-notes.xmp",
        photos / "2024" / "cat.jpg.xmp.pvtmp-0123456789ab.xmp",
        photos / ".gone.jpg.xmp.pvtmp-fedcba987654.xmp.orig",
    ]
    for path in ours + theirs:
        path.write_text("<x:xmpmeta")
    vault = tagger_vault()
    vault.wait_idle(expect_done=1, timeout=120)
    assert wait_sidecar(vault, photo)["sidecar_state"] == "written"
    assert [p for p in ours if p.exists()] == []
    assert all(p.read_text() == "<x:xmpmeta" for p in theirs)
    assert "removed 2 sidecar temp files left by a crash" in vault.log()


def _everything_readable(root: Path) -> bytes:
    out = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                out.append(path.read_bytes())
    return b"\n".join(out)


def test_a_symlinked_sidecar_is_never_read_nor_replaced_and_its_target_never_leaks(
    tmp_path: Path, tagger_vault
) -> None:
    photos = tmp_path / "photos"
    photo = cat_jpeg(photos / "car.jpg")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    target = private / "secret.xmp"
    target.write_text(
        (FIXTURES / "lightroom61-IMG_5910.jpg.xmp")
        .read_text()
        .replace("Alvin the Squirrel", SECRET)
    )
    target.chmod(0o600)
    before = (target.read_bytes(), target.stat().st_mode, target.stat().st_mtime_ns)
    link = photos / "car.jpg.xmp"
    link.symlink_to(target)

    vault = tagger_vault()
    vault.wait_idle(expect_done=1, timeout=120)
    shown = wait_sidecar(vault, photo)
    assert shown["sidecar_state"] == "skipped"
    assert "car.jpg.xmp is a symbolic link" in shown["sidecar_warning"]
    imported = vault.ctl("sidecars", "import").stdout
    said = [
        json.dumps(shown),
        json.dumps(vault.show(photo)),
        vault.ctl("sidecar", str(photo), "--json", check=False).stdout,
        json.dumps(vault.status()),
        imported,
    ]
    assert any(
        "car.jpg.xmp is a symbolic link" in w["warning"] for w in vault.status()["sidecar_warnings"]
    )
    vault.stop()
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert (target.read_bytes(), target.stat().st_mode, target.stat().st_mtime_ns) == before
    assert not [s for s in said if SECRET in s]
    assert SECRET not in vault.log()
    assert SECRET.encode() not in _everything_readable(tmp_path / "state")
    assert SECRET.encode() not in _everything_readable(photos)


def test_a_keyword_a_person_replaced_does_not_come_back_on_sidecars_rewrite(
    tmp_path: Path, tagger_vault
) -> None:
    vault = tagger_vault()
    photo = cat_jpeg(tmp_path / "photos" / "c.jpg")
    vault.wait_idle(expect_done=1, timeout=120)
    sidecar = Path(wait_sidecar(vault, photo)["sidecar"])
    assert "Cat" in as_list(exiftool_json(sidecar)["XMP-dc:Subject"])
    subprocess.run(  # a person replaces our Cat with Wolf (in digiKam, say)
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-XMP-dc:Subject-=Cat",
            "-XMP-dc:Subject+=Wolf",
            "-XMP-lr:HierarchicalSubject-=Animals|Cat",
            "-XMP-lr:HierarchicalSubject+=Animals|Wolf",
            "-XMP-digiKam:TagsList-=Animals/Cat",
            "-XMP-digiKam:TagsList+=Animals/Wolf",
            str(sidecar),
        ],
        check=True,
    )
    vault.wait_for(
        lambda: "Animals|Wolf" in (vault.show(photo).get("sidecar_keywords") or []),
        20,
        "the person's change read back",
    )
    assert "rewriting sidecars of 1 photos" in vault.ctl("sidecars", "rewrite").stdout
    vault.wait_for(
        lambda: vault.show(photo).get("sidecar_state") in ("written", "unchanged"),
        30,
        "sidecar rewritten",
    )
    meta = exiftool_json(sidecar)
    assert "Wolf" in as_list(meta["XMP-dc:Subject"])
    assert "Cat" not in as_list(meta["XMP-dc:Subject"])
    assert "Animals|Cat" not in as_list(meta.get("XMP-lr:HierarchicalSubject", []))
    assert "Animals|Cat" not in vault.ctl("sidecar", str(photo)).stdout
