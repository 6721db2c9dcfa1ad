"""Sidecars end to end: real vaultd with the real offline tagger, read back by exiftool/exiv2."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers.vault import VaultProcess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xmp"
OURS = "XMP-photovault"


def cat_jpeg(path: Path, orientation: int = 1) -> Path:
    """scikit-image's chelsea (a real cat photo), optionally stored rotated."""
    from skimage import data

    img = Image.fromarray(data.chelsea())
    exif = Image.Exif()
    if orientation == 6:  # stored rotated 90° counter-clockwise, displayed upright
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def exiftool_json(path: Path) -> dict:
    out = subprocess.run(
        ["exiftool", "-j", "-struct", "-G1", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


@pytest.fixture
def tagger_vault(vault_factory, real_tagger_store):
    def start(**kw) -> VaultProcess:
        return vault_factory(models_from=real_tagger_store, analyzers=["metadata", "tagger"], **kw)

    return start


def wait_sidecar(vault: VaultProcess, photo: Path) -> dict:
    vault.wait_for(
        lambda: (
            vault.show(photo).get("sidecar_state") in ("written", "unchanged", "skipped", "empty")
        ),
        60,
        f"sidecar handled for {photo.name}",
    )
    return vault.show(photo)


def test_tags_reach_a_new_sidecar_that_exiftool_and_exiv2_read(
    tmp_path: Path, tagger_vault
) -> None:
    vault = tagger_vault()
    photo = cat_jpeg(tmp_path / "photos" / "chelsea.jpg")
    vault.wait_idle(expect_done=1, timeout=120)
    shown = wait_sidecar(vault, photo)
    assert shown["sidecar"] == str(photo) + ".xmp"
    assert any(t["tag"] == "Animals|Cat" and t["source"] == "tagger" for t in shown["tags"])
    assert any(lab["synset"].startswith("n02") for lab in shown["labels"])

    meta = exiftool_json(Path(shown["sidecar"]))
    assert "Cat" in as_list(meta["XMP-dc:Subject"])
    assert "Animals|Cat" in as_list(meta["XMP-lr:HierarchicalSubject"])
    assert "Animals/Cat" in as_list(meta["XMP-digiKam:TagsList"])
    exiv2 = subprocess.run(
        ["exiv2", "-px", shown["sidecar"]], capture_output=True, text=True
    ).stdout
    assert "Animals|Cat" in exiv2 and "Xmp.dc.subject" in exiv2

    human = vault.ctl("sidecar", str(photo)).stdout
    assert "keyword  Animals|Cat" in human
    assert photo.read_bytes() == cat_jpeg(tmp_path / "again.jpg").read_bytes()  # photo untouched


def test_an_existing_lightroom_sidecar_keeps_every_property(tmp_path: Path, tagger_vault) -> None:
    photos = tmp_path / "photos"
    photo = cat_jpeg(photos / "IMG_5910.jpg")
    sidecar = photos / "IMG_5910.jpg.xmp"
    shutil.copy(FIXTURES / "lightroom61-IMG_5910.jpg.xmp", sidecar)
    before = exiftool_json(sidecar)
    vault = tagger_vault()
    vault.wait_idle(expect_done=1, timeout=120)
    shown = wait_sidecar(vault, photo)
    assert shown["sidecar_state"] == "written", shown
    after = exiftool_json(sidecar)
    for key, value in before.items():
        if key.startswith(("System:", "File:", "ExifTool:")):
            continue
        if key in ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject"):
            assert set(as_list(value)) <= set(as_list(after[key])), key
        else:
            assert after.get(key) == value, key
    assert "Animals|Cat" in as_list(after["XMP-lr:HierarchicalSubject"])
    assert any(k.startswith(OURS) for k in after)


def test_base_naming_uses_an_existing_sidecar_of_the_other_name_and_no_loop(
    tmp_path: Path, tagger_vault
) -> None:
    photos = tmp_path / "photos"
    photo = cat_jpeg(photos / "cat.jpg")
    other = photos / "cat.xmp"
    shutil.copy(FIXTURES / "darktable-bibble-_27A1417.CR2.xmp", other)
    vault = tagger_vault()
    vault.wait_idle(expect_done=1, timeout=120)
    shown = wait_sidecar(vault, photo)
    assert shown["sidecar"] == str(other)
    assert not (photos / "cat.jpg.xmp").exists()
    time.sleep(3)
    assert vault.log().count("sidecar written") == 1, "our own write triggered another write"


def test_a_read_only_share_gets_sidecars_in_the_mirror_tree(tmp_path: Path, tagger_vault) -> None:
    ro = tmp_path / "ro"
    photo = cat_jpeg(ro / "2024" / "cat.jpg")
    vault = tagger_vault(shares=[{"name": "ro", "path": str(ro), "read_only": True}])
    vault.wait_idle(share="ro", expect_done=1, timeout=120)
    shown = wait_sidecar(vault, photo)
    mirror = tmp_path / "state" / "sidecars" / "ro" / "2024" / "cat.jpg.xmp"
    assert shown["sidecar"] == str(mirror)
    assert sorted(p.name for p in ro.rglob("*")) == ["2024", "cat.jpg"]


def test_a_malformed_sidecar_is_left_untouched_with_a_warning(tmp_path: Path, tagger_vault) -> None:
    photos = tmp_path / "photos"
    photo = cat_jpeg(photos / "bad.jpg")
    broken = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF unclosed"
    (photos / "bad.jpg.xmp").write_bytes(broken)
    vault = tagger_vault()
    vault.wait_idle(expect_done=1, timeout=120)
    shown = wait_sidecar(vault, photo)
    assert shown["state"] == "done"
    assert (photos / "bad.jpg.xmp").read_bytes() == broken
    warnings = vault.status()["sidecar_warnings"]
    assert warnings and warnings[0]["path"].endswith("bad.jpg.xmp")


def test_keywords_added_in_another_program_are_read_back_and_kept(
    tmp_path: Path, tagger_vault
) -> None:
    vault = tagger_vault()
    photo = cat_jpeg(tmp_path / "photos" / "c.jpg")
    vault.wait_idle(expect_done=1, timeout=120)
    sidecar = Path(wait_sidecar(vault, photo)["sidecar"])
    subprocess.run(
        ["exiftool", "-overwrite_original", "-XMP-dc:Subject+=Grandma's sofa", str(sidecar)],
        check=True,
        capture_output=True,
    )
    vault.wait_for(
        lambda: "Grandma's sofa" in (vault.show(photo).get("sidecar_keywords") or []),
        20,
        "foreign keyword read back",
    )
    # Rewriting everything keeps the person's keyword and ours.
    assert "rewriting sidecars of 1 photos" in vault.ctl("sidecars", "rewrite").stdout
    vault.wait_for(
        lambda: vault.show(photo).get("sidecar_state") in ("written", "unchanged"),
        30,
        "sidecar rewritten",
    )
    subjects = as_list(exiftool_json(sidecar)["XMP-dc:Subject"])
    assert "Grandma's sofa" in subjects and "Cat" in subjects


def test_a_rotated_photo_is_tagged_upright(tmp_path: Path, tagger_vault) -> None:
    vault = tagger_vault()
    photo = cat_jpeg(tmp_path / "photos" / "rot.jpg", orientation=6)
    vault.wait_idle(expect_done=1, timeout=120)
    shown = vault.show(photo)
    assert shown["orientation"] == 6
    assert any(t["tag"] == "Animals|Cat" for t in shown["tags"])
