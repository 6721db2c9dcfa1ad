"""The ingest pipeline end to end: a real vaultd, real watchdog, real folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.photos import jpeg_bytes, write_jpeg
from helpers.vault import VaultProcess, write_config


def runs(vault: VaultProcess, path: Path) -> int:
    sha = vault.show(path)["sha256"]
    with vault.db() as db:
        return db.execute("SELECT analysis_runs FROM content WHERE sha256 = ?", (sha,)).fetchone()[
            0
        ]


def test_a_file_written_slowly_in_chunks_is_processed_once_after_it_is_complete(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory(settle=1.0)
    data = jpeg_bytes(1, (1200, 900), quality=95)
    target = tmp_path / "photos" / "slow.jpg"
    chunks = [data[i : i + len(data) // 8 + 1] for i in range(0, len(data), len(data) // 8 + 1)]
    with target.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            fh.flush()
            time.sleep(0.6)  # longer than settle_seconds would allow if we ignored "open"
            assert vault.ctl("show", str(target), check=False).returncode == 1, "queued too early"
    vault.wait_idle(expect_done=1)
    shown = vault.show(target)
    assert shown["state"] == "done"
    assert shown["size"] == len(data) and shown["attempts"] == 0
    assert shown["width"] == 1200 and shown["height"] == 900
    assert runs(vault, target) == 1


def test_rename_move_and_copy_reuse_results_and_delete_forgets(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    first = write_jpeg(photos / "a.jpg", 7)
    vault.wait_idle(expect_done=1)
    sha = vault.show(first)["sha256"]

    renamed = photos / "b.jpg"
    first.rename(renamed)
    (photos / "sub").mkdir()
    moved = photos / "sub" / "b.jpg"
    renamed.rename(moved)
    copy = photos / "copy.jpg"
    copy.write_bytes(moved.read_bytes())
    vault.wait_idle(expect_done=2)

    assert vault.ctl("show", str(first), check=False).returncode == 1
    assert vault.show(moved)["state"] == "done" and vault.show(moved)["sha256"] == sha
    assert vault.show(copy)["sha256"] == sha
    with vault.db() as db:
        assert db.execute("SELECT SUM(analysis_runs) FROM content").fetchone()[0] == 1

    moved.unlink()
    vault.wait_for(
        lambda: vault.ctl("show", str(moved), check=False).returncode == 1,
        10,
        "deleted file left the catalog",
    )
    assert copy.exists() and vault.counts()["done"] == 1


def test_a_folder_moved_into_the_share_is_picked_up(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    outside = tmp_path / "outside" / "trip"
    for i in range(3):
        write_jpeg(outside / f"{i}.jpg", 100 + i)
    outside.rename(tmp_path / "photos" / "trip")
    vault.wait_idle(expect_done=3)


def test_files_changed_while_down_are_reconciled_at_start(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    keep = write_jpeg(photos / "keep.jpg", 1)
    gone = write_jpeg(photos / "gone.jpg", 2)
    vault.wait_idle(expect_done=2)
    vault.stop()
    gone.unlink()
    new = write_jpeg(photos / "new.jpg", 3)
    os.utime(new, (time.time() - 60, time.time() - 60))
    vault.start()
    vault.wait_idle(expect_done=2)
    assert vault.show(new)["state"] == "done"
    assert vault.ctl("show", str(gone), check=False).returncode == 1
    assert runs(vault, keep) == 1


def test_pause_and_resume_take_effect_within_a_second(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    assert vault.ctl("pause").stdout.strip() == "paused"
    for i in range(5):
        write_jpeg(tmp_path / "photos" / f"{i}.jpg", 200 + i)
    vault.wait_for(lambda: vault.status()["queue_depth"] == 5, 10, "files queued")
    time.sleep(1.5)
    assert vault.counts()["done"] == 0 and vault.status()["paused"] is True
    t0 = time.monotonic()
    vault.ctl("resume")

    def taken() -> bool:  # claimed (processing) or already finished
        c = vault.counts()
        return c["processing"] + c["done"] >= 1

    vault.wait_for(taken, 10, "work resumed")
    # Within a second of the worker seeing it; the rest is vaultctl's own start-up.
    assert time.monotonic() - t0 < 3.0
    vault.wait_idle(expect_done=5)


def test_status_shows_progress_and_show_returns_photo_facts(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    p = write_jpeg(tmp_path / "photos" / "x.jpg", 9, (640, 480))
    vault.wait_idle(expect_done=1)
    st = vault.status()
    share = st["shares"][0]
    assert share["name"] == "photos" and share["watch"] == "inotify"
    assert share["counts"]["done"] == 1
    for key in (
        "queue_depth",
        "paused",
        "quiet_hours_active",
        "rate_per_second",
        "last_scan",
        "quarantined",
    ):
        assert key in st
    # the in-memory vector index loads in the background; LanceDB answers until
    # the library is large enough for it
    vault.wait_for(
        lambda: vault.status()["memory_index"]["state"] == "ready", 30, "memory index loaded"
    )
    mem = vault.status()["memory_index"]
    assert (mem["serving"], mem["reason"], mem["cells"]) == (False, None, 0)
    human = vault.ctl("status").stdout
    assert "photos" in human and "1/1" in human and "100.0%" in human
    assert "memory index: ready (" in human
    shown = vault.show(p)
    assert shown["path"] == str(p) and shown["state"] == "done"
    assert len(shown["sha256"]) == 64 and (shown["width"], shown["height"]) == (640, 480)
    assert shown["results"]["metadata"]["dhash"]


def test_sigterm_exits_within_ten_seconds_and_leaves_nothing_in_flight(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory(extra="")
    for i in range(60):
        write_jpeg(tmp_path / "photos" / f"{i}.jpg", 300 + i, (800, 600))
    vault.wait_for(lambda: vault.counts()["done"] >= 1, 30, "work started")
    t0 = time.monotonic()
    assert vault.stop(timeout=12) == 0
    assert time.monotonic() - t0 < 10
    with vault.db() as db:
        assert db.execute("SELECT COUNT(*) FROM files WHERE state='processing'").fetchone()[0] == 0


def test_sighup_reload_adds_a_share(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    second = tmp_path / "second"
    second.mkdir()
    write_config(
        tmp_path,
        shares=[
            {"name": "photos", "path": str(tmp_path / "photos")},
            {"name": "second", "path": str(second)},
        ],
    )
    vault.signal(signal.SIGHUP)
    vault.wait_for(lambda: len(vault.status()["shares"]) == 2, 10, "share added")
    write_jpeg(second / "y.jpg", 5)
    vault.wait_idle(share="second", expect_done=1)


def test_a_config_error_stops_vaultd_with_file_and_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("batch_size = 8\n", "batch_size = -1\n"))
    r = subprocess.run(
        [sys.executable, "-m", "photovault.daemon_main", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert str(cfg) in r.stderr and "[throttle] batch_size" in r.stderr


def test_a_share_set_to_polling_still_ingests(tmp_path: Path, vault_factory) -> None:
    (tmp_path / "photos").mkdir()
    vault = vault_factory(
        shares=[{"name": "photos", "path": str(tmp_path / "photos"), "watch": "polling"}]
    )
    assert vault.status()["shares"][0]["watch"] == "polling"
    write_jpeg(tmp_path / "photos" / "p.jpg", 11)
    vault.wait_idle(expect_done=1, timeout=30)


def test_a_store_written_by_a_newer_photovault_stops_vaultd_with_exit_3(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    index = tmp_path / "state" / "index"
    index.mkdir(parents=True)
    (index / "meta.json").write_text('{"schema_version": 999, "vector_dim": 512}')
    r = subprocess.run(
        [sys.executable, "-m", "photovault.daemon_main", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 3, r.stderr[-2000:]
    assert "999" in r.stderr and str(index) in r.stderr
    assert "Traceback" not in r.stderr
