"""File names are bytes: a photo whose name is not UTF-8, end to end.

Real vaultd, real exiftool, real LanceDB. The name b"caf\\xe9.jpg" (Latin-1)
must get its metadata, be found by search, and the path search prints must
name the photo again for `vaultctl show`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers.vault import VaultProcess, write_config

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")

NAME = b"caf\xe9.jpg"
TAGS = [
    "-DateTimeOriginal=2019:08:04 18:30:00",
    "-Make=Canon",
    "-Model=Canon EOS 80D",
    "-GPSLatitude=48.8566",
    "-GPSLatitudeRef=N",
    "-GPSLongitude=2.3522",
    "-GPSLongitudeRef=E",
]


def tagged_jpeg(raw_path: bytes) -> bytes:
    """A real JPEG at `raw_path` (bytes, any name), tagged by exiftool."""
    tmp = raw_path + b".tmp"
    Image.new("RGB", (320, 240), (200, 120, 40)).save(os.fsdecode(tmp), "JPEG")
    subprocess.run(["exiftool", "-q", "-overwrite_original", *TAGS, tmp], check=True)
    os.rename(tmp, raw_path)  # arrives complete, as a camera upload would
    return raw_path


def ctl(vault: VaultProcess, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """vaultctl with byte arguments and byte output: no decoding on the way."""
    return subprocess.run(
        [sys.executable, "-m", "photovault.cli.vaultctl", "--socket", str(vault.socket), *args],
        capture_output=True,
        timeout=60,
    )


def shown(vault: VaultProcess, raw_path: bytes) -> dict:
    r = ctl(vault, "show", raw_path, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_has_its_metadata(facts: dict) -> None:
    assert facts["state"] == "done"
    assert facts["camera"] == "Canon EOS 80D"
    assert facts["taken_at"] == "2019-08-04T18:30:00"
    assert facts["gps"]["lat"] == pytest.approx(48.8566, abs=1e-4)
    assert facts["gps"]["lon"] == pytest.approx(2.3522, abs=1e-4)


@pytest.fixture(scope="module")
def latin1_vault(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("vault")
    vault = VaultProcess(write_config(base), base)
    vault.start()
    raw = tagged_jpeg(os.fsencode(base / "photos") + b"/" + NAME)
    vault.wait_idle(expect_done=1, timeout=60)
    yield vault, raw
    vault.stop()


def test_a_latin1_name_gets_its_capture_time_camera_and_gps(latin1_vault) -> None:
    vault, raw = latin1_vault
    assert_has_its_metadata(shown(vault, raw))


def test_search_prints_the_names_bytes_and_show_takes_them_back(latin1_vault) -> None:
    vault, raw = latin1_vault
    r = ctl(vault, "search", "--camera", "canon")
    assert r.returncode == 0, r.stderr
    rows = [line.split(b"  ") for line in r.stdout.splitlines()[1:]]  # under the heading

    assert [row[1] for row in rows] == [raw]
    assert_has_its_metadata(shown(vault, rows[0][1]))


def test_search_json_gives_the_path_to_python_and_its_bytes_to_everyone(latin1_vault) -> None:
    vault, raw = latin1_vault
    r = ctl(vault, "search", "--camera", "canon", "--json")
    assert r.returncode == 0, r.stderr
    (hit,) = json.loads(r.stdout.decode("utf-8"))  # valid UTF-8 for any JSON reader

    assert os.fsencode(hit["path"]) == raw
    assert base64.b64decode(hit["path_bytes"]) == raw
    assert_has_its_metadata(shown(vault, os.fsencode(hit["path"])))


def test_a_path_glob_naming_the_byte_finds_the_photo(latin1_vault) -> None:
    vault, raw = latin1_vault
    r = ctl(vault, "search", "--path", b"caf\xe9*", "--json")
    assert r.returncode == 0, r.stderr
    assert [os.fsencode(h["path"]) for h in json.loads(r.stdout)] == [raw]


def test_a_utf8_copy_of_a_latin1_named_photo_gets_the_same_metadata(
    tmp_path: Path, vault_factory
) -> None:
    """The copy reuses the content's results: they must be the real ones."""
    vault = vault_factory()
    photos = tmp_path / "photos"
    raw = tagged_jpeg(os.fsencode(photos) + b"/" + NAME)
    vault.wait_idle(expect_done=1, timeout=60)

    shutil.copyfile(raw, photos / "copy.tmp")
    os.rename(photos / "copy.tmp", photos / "copy.jpg")
    vault.wait_idle(expect_done=2, timeout=60)

    assert_has_its_metadata(shown(vault, os.fsencode(photos / "copy.jpg")))
