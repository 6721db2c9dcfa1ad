"""Backup while running, restore, then search; export without location, via vaultctl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.photos import write_jpeg


def test_backup_while_running_then_restore_and_search_again(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    for i in range(6):
        write_jpeg(photos / "trip" / f"{i}.jpg", 500 + i)
    vault.wait_idle(expect_done=6)
    backups = tmp_path / "backups"
    out = vault.ctl("backup", str(backups)).stdout
    assert "backup written to" in out

    # Disaster: the state is lost. Restore needs the daemon stopped.
    r = vault.ctl(
        "--config", str(vault.config), "restore", str(next(backups.iterdir())), check=False
    )
    assert r.returncode == 2 and "running" in r.stderr.lower()
    vault.stop()
    (tmp_path / "state" / "catalog.sqlite3").unlink()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "photovault.cli.vaultctl",
            "--config",
            str(vault.config),
            "restore",
            str(next(backups.iterdir())),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "previous state was kept" in r.stdout
    vault.start()
    vault.wait_idle(expect_done=6)
    found = json.loads(vault.ctl("search", "--path", "trip/*", "--json").stdout)
    assert len(found) == 6
    with vault.db() as db:  # nothing was analyzed again after the restore
        assert db.execute("SELECT MAX(analysis_runs) FROM content").fetchone()[0] == 1


def test_export_strip_location_leaves_no_gps_in_the_copies(tmp_path: Path) -> None:
    src = write_jpeg(tmp_path / "src" / "beach.jpg", 1)
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-GPSLatitude=43.7",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=7.26",
            "-GPSLongitudeRef=E",
            "-XMP-photoshop:City=Nice",
            str(src),
        ],
        check=True,
    )
    before = src.read_bytes()
    dest = tmp_path / "share-with-grandma"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "photovault.cli.vaultctl",
            "export",
            "--strip-location",
            str(src),
            str(dest),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    copy = dest / "beach.jpg"
    tags = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-G1", "-a", str(copy)], capture_output=True, text=True
        ).stdout
    )[0]
    assert not [k for k in tags if "GPS" in k or "City" in k], tags
    assert src.read_bytes() == before
