"""A person's keyword decisions hold everywhere, end to end: real vaultd, real
tagger, real exiftool (#14). A keyword of ours they removed from the sidecar
leaves `show` and search; one they added joins both, through `sidecars rewrite`
and a restart.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers.vault import VaultProcess

from .test_sidecars import as_list, cat_jpeg, exiftool_json, wait_sidecar


def _search_tag(vault: VaultProcess, tag: str) -> list[str]:
    r = vault.ctl("search", "--tag", tag, "--json", check=False)
    assert r.returncode in (0, 1), r.stderr
    return [Path(h["path"]).name for h in json.loads(r.stdout)] if r.returncode == 0 else []


def _tags(vault: VaultProcess, photo: Path) -> list[str]:
    return [t["tag"] for t in vault.show(photo).get("tags") or []]


def _as_the_person_left_it(vault: VaultProcess, photo: Path) -> bool:
    tags = _tags(vault, photo)
    return (
        "Animals|Wolf" in tags
        and "Animals|Cat" not in tags
        and _search_tag(vault, "Animals|Wolf") == [photo.name]
        and _search_tag(vault, "wolf") == [photo.name]
        and _search_tag(vault, "Animals|Cat") == []
        and _search_tag(vault, "cat") == []
    )


def test_a_cat_a_person_replaced_by_a_wolf_is_a_wolf_in_show_and_search_for_good(
    tmp_path: Path, vault_factory, real_tagger_store
) -> None:
    vault = vault_factory(models_from=real_tagger_store, analyzers=["metadata", "tagger"])
    photo = cat_jpeg(tmp_path / "photos" / "c.jpg")
    vault.wait_idle(expect_done=1, timeout=120)
    sidecar = Path(wait_sidecar(vault, photo)["sidecar"])
    assert "Animals|Cat" in _tags(vault, photo)
    vault.wait_for(lambda: _search_tag(vault, "Animals|Cat") == [photo.name], 30, "cat indexed")
    assert _search_tag(vault, "Animals|Wolf") == []

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
        lambda: _as_the_person_left_it(vault, photo), 30, "the person's change in show and search"
    )
    wolf = next(t for t in vault.show(photo)["tags"] if t["tag"] == "Animals|Wolf")
    assert wolf["source"] == "person"

    assert "rewriting sidecars of 1 photos" in vault.ctl("sidecars", "rewrite").stdout
    vault.wait_for(
        lambda: vault.show(photo).get("sidecar_state") in ("written", "unchanged"),
        30,
        "sidecar rewritten",
    )
    vault.wait_for(lambda: _as_the_person_left_it(vault, photo), 30, "the change kept on rewrite")
    assert "Wolf" in as_list(exiftool_json(sidecar)["XMP-dc:Subject"])

    vault.stop()
    vault.start()
    vault.wait_idle(expect_done=1, timeout=120)
    assert _as_the_person_left_it(vault, photo)
