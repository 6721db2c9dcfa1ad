"""exiftool missing or dead: photos wait (never done without their date and place),
the fault shows in status, and work resumes by itself once exiftool is back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.photos import write_jpeg
from helpers.vault import VaultProcess, write_config


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_without_exiftool_photos_wait_and_the_fault_shows_until_it_is_back(
    tmp_path: Path,
) -> None:
    real = shutil.which("exiftool")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "ffprobe"):  # only exiftool is missing
        found = shutil.which(tool)
        assert found is not None, f"{tool} is part of make install"
        (bin_dir / tool).symlink_to(found)
    vault = VaultProcess(write_config(tmp_path), tmp_path)
    vault.start(env={"PATH": str(bin_dir)})  # vaultd finds no exiftool on its PATH
    try:
        photos = tmp_path / "photos"
        for i in range(3):
            write_jpeg(photos / f"IMG_{i}.jpg", 500 + i)

        def exiftool_problem() -> bool:
            return any(p["kind"] == "exiftool" for p in vault.status()["problems"])

        vault.wait_for(exiftool_problem, 60, "the missing exiftool reported")
        assert vault.counts()["done"] == 0  # nothing stored without its metadata
        assert vault.ctl("status", check=False).returncode == 1

        (bin_dir / "exiftool").symlink_to(real)
        vault.wait_idle(expect_done=3, timeout=90)
        vault.wait_for(lambda: not vault.status()["problems"], 30, "the problem cleared")
        shown = vault.show(photos / "IMG_0.jpg")
        assert shown["state"] == "done" and shown.get("width") == 320
    finally:
        vault.stop()
