"""exiftool failing on one copy
must not become the content's metadata for good."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")


def test_metadata_exiftool_could_not_read_is_read_again_from_a_copy(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    plain = tmp_path / "tagged.jpg"
    Image.new("RGB", (320, 240), (10, 120, 200)).save(plain, "JPEG")
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-Make=Canon", "-Model=Canon EOS 80D", plain],
        check=True,
    )
    # exiftool's argument protocol cannot pass a line break: its read fails.
    shutil.copyfile(plain, photos / "line\nbreak.jpg")
    vault.wait_idle(expect_done=1, timeout=60)

    shutil.copyfile(plain, photos / "copy.tmp")
    os.rename(photos / "copy.tmp", photos / "copy.jpg")
    vault.wait_idle(expect_done=2, timeout=60)

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "photovault.cli.vaultctl",
            "--socket",
            str(vault.socket),
            "show",
            str(photos / "copy.jpg"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    import json

    assert json.loads(r.stdout)["camera"] == "Canon EOS 80D"
