"""Text in photos end to end: real vaultd reads receipts among ordinary photos and finds
them by the shop's name.

Receipts with shop names the analyzer's own tests never use (Malaysian-style company
names, as in scanned-receipt collections, whose "SDN BHD" OCR often joins), each
photographed on a table at an angle, mixed with real photos without text. Search by a
shop's name puts its receipt in the top 5; show, the sidecar and the Documents keyword
carry the text; the ordinary photos get none.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.textimages import photographed, receipt
from helpers.vault import VaultProcess, write_config

from .test_search import skimage_jpeg

SHOPS = (
    ("KEDAI RUNCIT BERKAT JAYA SDN BHD", "No 5 Jalan Mawar, Kajang"),
    ("TOKO BESI SINAR HARAPAN", "Lot 88 Jalan Kilang, Balakong"),
    ("RESTORAN NASI KANDAR PELITA", "22 Jalan Ampang, Kuala Lumpur"),
    ("MR DIY TRADING SDN BHD", "Lot 1851 Jalan KPB 6, Seri Kembangan"),
    ("POPULAR BOOK CO (M) SDN BHD", "12 Jalan Tun Razak, Kuala Lumpur"),
    ("SYARIKAT PERNIAGAAN GIN KEE", "Jalan Besar, Semenyih"),
)
PLAIN = ("chelsea", "coffee", "rocket", "astronaut", "coins", "hubble_deep_field")


@pytest.fixture(scope="module")
def text_vault(tmp_path_factory: pytest.TempPathFactory):
    from photovault.models.install import install

    base = tmp_path_factory.mktemp("text")
    photos = base / "photos"
    (photos / "receipts").mkdir(parents=True)
    for i, shop in enumerate(SHOPS):
        paper = receipt(seed=i, shop=shop).image
        photographed(paper, angle=(0, 90, 8, -12, 180, 3)[i], seed=i).save(
            photos / "receipts" / f"scan_{i:02d}.jpg", quality=88
        )
    for name in PLAIN:
        skimage_jpeg(name, photos / "plain" / f"{name}.jpg")
    install(base / "state" / "models", "text", "pp-ocrv6-tiny")
    vault = VaultProcess(write_config(base, analyzers=["metadata", "text"]), base)
    vault.start()
    vault.wait_idle(expect_done=len(SHOPS) + len(PLAIN), timeout=300)
    yield vault, photos
    vault.stop()


def _search(vault: VaultProcess, text: str) -> list[dict]:
    r = vault.ctl("search", text, "--json", check=False)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout) if r.returncode == 0 else []


def test_a_shops_name_finds_its_receipt_in_the_top_five(text_vault) -> None:
    vault, _ = text_vault
    found = 0
    for i, (shop, _address) in enumerate(SHOPS):
        hits = [Path(h["path"]).name for h in _search(vault, shop)[:5]]
        found += f"scan_{i:02d}.jpg" in hits
    assert found == len(SHOPS), found


def test_a_hit_carries_the_matching_line_and_human_output_shows_it(text_vault) -> None:
    vault, _ = text_vault
    (top, *_rest) = _search(vault, "Pelita")
    assert Path(top["path"]).name == "scan_02.jpg"
    assert "PELITA" in (top["text_match"] or "").upper()
    assert "PELITA" in vault.ctl("search", "Pelita").stdout.upper()


def test_show_and_the_sidecar_carry_the_text_and_the_receipt_keyword(text_vault) -> None:
    vault, photos = text_vault
    shown = vault.show(photos / "receipts" / "scan_03.jpg")
    words = " ".join(line["text"] for line in shown["text"]).upper()
    assert "TOTAL" in words and "DIY" in words
    assert all(len(line["box"]) == 4 and 0 < line["score"] <= 1 for line in shown["text"])
    assert "Documents|Receipt" in {t["tag"] for t in shown["tags"]}
    sidecar = photos / "receipts" / "scan_03.jpg.xmp"
    vault.wait_for(sidecar.exists, 60, "the receipt's sidecar")
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-photovault:Text", "-XMP-dc:Description", str(sidecar)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    read = json.loads(out)[0]
    assert "TOTAL" in str(read.get("Text", "")).upper()
    assert "Description" not in read


def test_ordinary_photos_get_no_text(text_vault) -> None:
    vault, photos = text_vault
    with_text = [name for name in PLAIN if vault.show(photos / "plain" / f"{name}.jpg")["text"]]
    assert len(with_text) <= 1, with_text  # >= 90% of ordinary photos read as no text
