"""Share faults end to end: a real vaultd, real watchdog, real folders.

An outage is not a deletion: a share folder renamed away or an unmounted disk
keeps its photos, is reported in `vaultctl status`, and resumes by itself with
no re-analysis and no sidecar rewrite. Directory symlinks are not followed.
A chmod gives a file quarantined for "Permission denied" another try.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.photos import write_jpeg
from helpers.vault import VaultProcess, write_config

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def share_problems(vault: VaultProcess) -> list[dict]:
    return [p for p in vault.status().get("problems", []) if p["kind"] == "share"]


def memory(vault: VaultProcess) -> dict[str, tuple]:
    """relpath -> (file id, state, sha, analysis runs, sidecar state and time): what a
    re-analysis or a sidecar rewrite would change."""
    with vault.db() as db:
        rows = db.execute(
            "SELECT f.relpath, f.id, f.state, f.sha256, c.analysis_runs, s.state AS s_state,"
            " s.updated_at AS s_time FROM files f LEFT JOIN content c ON c.sha256 = f.sha256"
            " LEFT JOIN sidecars s ON s.file_id = f.id"
        ).fetchall()
    return {
        os.fsdecode(r["relpath"]): (
            r["id"],
            r["state"],
            r["sha256"],
            r["analysis_runs"],
            r["s_state"],
            r["s_time"],
        )
        for r in rows
    }


def photos_done(vault: VaultProcess, tmp_path: Path, n: int) -> dict[str, tuple]:
    """n photos in `photos` (one in a subfolder), all done and their sidecars settled."""
    photos = tmp_path / "photos"
    for i in range(n - 1):
        write_jpeg(photos / f"{i}.jpg", 40 + i)
    write_jpeg(photos / "sub" / "s.jpg", 39)
    vault.wait_idle(expect_done=n)
    vault.wait_for(
        lambda: all(m[4] is not None for m in memory(vault).values()), 30, "sidecars settled"
    )
    before = memory(vault)
    assert len(before) == n
    return before


def test_a_share_renamed_away_keeps_its_photos_and_resumes_without_reanalysis(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    before = photos_done(vault, tmp_path, 6)
    photos, away = tmp_path / "photos", tmp_path / "away"

    photos.rename(away)
    # inotify follows the moved folder: this arrives as a deletion in the share.
    (away / "0.jpg").unlink()
    r = vault.ctl("rescan", check=False)
    assert r.returncode != 0, "a rescan of a missing share must not succeed silently"
    assert "missing" in r.stderr
    vault.wait_for(lambda: share_problems(vault), 5, "share problem reported")
    (problem,) = share_problems(vault)
    assert "missing" in problem["message"] and problem["path"] == str(photos)
    # The rescan reports it at once; the watcher stops at its next tick (once a second).
    vault.wait_for(lambda: vault.status()["shares"][0]["watch"] == "offline", 5, "watch offline")
    human = vault.ctl("status", check=False)
    assert human.returncode == 1 and "share:" in human.stdout
    time.sleep(1.5)  # a tick or two: still nothing forgotten
    assert memory(vault) == before

    away.rename(photos)
    vault.wait_for(lambda: not share_problems(vault), 10, "share problem cleared")
    # Back: the rescan it asked for forgets only what was really deleted meanwhile.
    vault.wait_for(lambda: "0.jpg" not in memory(vault), 10, "0.jpg forgotten after the return")
    vault.wait_idle(expect_done=5)
    time.sleep(1.0)
    after = memory(vault)
    del before["0.jpg"]
    assert after == before, "re-analysed or sidecars rewritten"
    assert vault.ctl("rescan").returncode == 0
    assert vault.status()["shares"][0]["watch"] == "inotify"


def test_an_unmounted_disk_leaves_an_empty_mount_point_that_forgets_nothing(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    before = photos_done(vault, tmp_path, 4)
    photos, disk = tmp_path / "photos", tmp_path / "disk"

    photos.rename(disk)
    photos.mkdir()  # the bare mount point
    vault.wait_for(lambda: share_problems(vault), 5, "share problem reported")
    assert "empty" in share_problems(vault)[0]["message"]
    r = vault.ctl("rescan", check=False)
    assert r.returncode != 0 and "empty" in r.stderr
    assert memory(vault) == before

    photos.rmdir()
    disk.rename(photos)  # mounted again
    vault.wait_for(lambda: not share_problems(vault), 10, "share problem cleared")
    vault.wait_idle(expect_done=4)
    assert vault.ctl("rescan").returncode == 0
    assert memory(vault) == before


def test_vaultd_started_while_the_disk_is_not_mounted_forgets_nothing_and_waits(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    before = photos_done(vault, tmp_path, 3)
    vault.stop()
    photos, disk = tmp_path / "photos", tmp_path / "disk"
    photos.rename(disk)
    photos.mkdir()  # at boot, before the disk is mounted: the bare mount point

    vault.start()
    vault.wait_for(lambda: share_problems(vault), 10, "share problem reported")
    vault.wait_idle()
    assert memory(vault) == before

    photos.rmdir()
    disk.rename(photos)
    vault.wait_for(lambda: not share_problems(vault), 10, "share problem cleared")
    write_jpeg(photos / "new.jpg", 77)  # watched again
    vault.wait_idle(expect_done=4)
    after = memory(vault)
    assert {k: v for k, v in after.items() if k != "new.jpg"} == before


def relpaths(vault: VaultProcess) -> list[str]:
    with vault.db() as db:
        return sorted(os.fsdecode(r[0]) for r in db.execute("SELECT relpath FROM files"))


def test_a_symlink_loop_adds_no_duplicates_from_the_watcher_or_the_scan(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    write_jpeg(photos / "a.jpg", 1)
    vault.wait_idle(expect_done=1)
    (photos / "d").mkdir()
    (photos / "d" / "up").symlink_to("..")  # ln -s .. d/up
    write_jpeg(photos / "d" / "b.jpg", 2)
    trip = tmp_path / "outside" / "trip"  # a folder moved in with a loop inside
    write_jpeg(trip / "c.jpg", 3)
    (trip / "loop").symlink_to(photos)
    trip.rename(photos / "trip")
    vault.wait_idle(expect_done=3)
    time.sleep(1.0)
    assert relpaths(vault) == ["a.jpg", "d/b.jpg", "trip/c.jpg"]
    assert vault.ctl("rescan").returncode == 0
    vault.wait_idle(expect_done=3)
    assert relpaths(vault) == ["a.jpg", "d/b.jpg", "trip/c.jpg"]


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"),
    reason="as root, needs setpriv to give up the power to read any file",
)
def test_a_file_quarantined_for_permission_denied_is_retried_after_chmod_and_rescan(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    secret = write_jpeg(photos / "secret.jpg", 6)
    write_jpeg(photos / "open.jpg", 7)
    os.chmod(secret, 0o000)
    vault = VaultProcess(
        write_config(tmp_path), tmp_path, wrapper=NO_DAC if os.geteuid() == 0 else None
    )
    vault.start()
    try:
        vault.wait_idle(timeout=60)
        (q,) = vault.status()["quarantined"]
        assert q["path"] == str(secret) and "permission denied" in q["reason"].lower()

        os.chmod(secret, 0o644)  # ctime changes; size and mtime do not
        assert vault.ctl("rescan").returncode == 0
        vault.wait_idle(expect_done=2, timeout=30)
        shown = vault.show(secret)
        assert shown["state"] == "done" and vault.status()["quarantined"] == []
    finally:
        vault.stop()


def test_files_queued_when_their_share_goes_offline_wait_instead_of_being_forgotten(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    photos, away = tmp_path / "photos", tmp_path / "away"
    write_jpeg(photos / "keep.jpg", 60)  # the root is never empty
    vault.wait_idle(expect_done=1)
    vault.ctl("pause")
    for i in range(4):
        write_jpeg(photos / f"q{i}.jpg", 61 + i)
    vault.wait_for(lambda: vault.status()["queue_depth"] == 4, 20, "queued")

    photos.rename(away)
    vault.ctl("resume")
    vault.wait_for(lambda: share_problems(vault), 10, "share problem reported")
    time.sleep(3)  # the worker meets the missing files meanwhile
    with vault.db() as db:
        states = sorted(r[0] for r in db.execute("SELECT state FROM files"))
    assert states == ["done", "pending", "pending", "pending", "pending"], states
    assert vault.status()["quarantined"] == []

    away.rename(photos)
    vault.wait_idle(expect_done=5, timeout=60)
    vault.wait_for(lambda: not share_problems(vault), 20, "share problem cleared")


def can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)]).returncode
    if ok != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


def mount_tmpfs(where: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(where)], check=True)


def test_a_stray_file_in_an_unmounted_disks_mount_point_forgets_nothing(
    tmp_path: Path, vault_factory
) -> None:
    photos, saved = tmp_path / "photos", tmp_path / "saved"
    if not can_mount_tmpfs(photos):
        pytest.skip("needs root and tmpfs mounts")
    mount_tmpfs(photos)
    try:
        vault = vault_factory()
        before = photos_done(vault, tmp_path, 10)
        shutil.copytree(photos, saved)  # the disk's contents, times kept

        subprocess.run(["umount", "-l", str(photos)], check=True)
        vault.wait_for(lambda: share_problems(vault), 5, "share problem reported")
        assert "empty" in share_problems(vault)[0]["message"]
        write_jpeg(photos / "stray.jpg", 90)  # into the bare mount point
        vault.wait_for(
            lambda: any("gone from disk" in p["message"] for p in share_problems(vault)),
            10,
            "bulk deletion held back",
        )
        r = vault.ctl("rescan", check=False)
        assert r.returncode != 0 and "--forget-missing" in r.stderr, r.stderr
        assert "10 of " in r.stderr and "another device" in r.stderr
        time.sleep(1.5)  # a tick or two: still reported, still nothing forgotten
        (problem,) = share_problems(vault)
        assert "vaultctl rescan photos --forget-missing" in problem["message"]
        assert {k: v for k, v in memory(vault).items() if k != "stray.jpg"} == before

        mount_tmpfs(photos)  # mounted again: the same photos, on a new device
        shutil.copytree(saved, photos, dirs_exist_ok=True)
        vault.wait_for(lambda: not share_problems(vault), 10, "share problem cleared")
        assert vault.ctl("rescan").returncode == 0
        vault.wait_idle(expect_done=10)
        assert memory(vault) == before, "forgotten, re-analysed or sidecars rewritten"

        # Unmounted again, and this time the photos were deleted on purpose.
        subprocess.run(["umount", "-l", str(photos)], check=True)
        write_jpeg(photos / "stray.jpg", 90)
        vault.wait_for(
            lambda: any("gone from disk" in p["message"] for p in share_problems(vault)),
            10,
            "bulk deletion held back",
        )
        assert vault.ctl("rescan", "photos", "--forget-missing").returncode == 0
        vault.wait_for(lambda: not share_problems(vault), 5, "share problem cleared")
        vault.wait_idle(expect_done=1)
        assert list(memory(vault)) == ["stray.jpg"]
    finally:
        while subprocess.run(["umount", str(photos)], capture_output=True).returncode == 0:
            pass


def test_vaultd_starts_with_a_share_folder_missing_and_picks_it_up_when_it_appears(
    tmp_path: Path, vault_factory
) -> None:
    photos, usb = tmp_path / "photos", tmp_path / "usb"
    photos.mkdir()
    shares = [{"name": "photos", "path": str(photos)}, {"name": "usb", "path": str(usb)}]
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "photovault.daemon_main",
            "--check",
            "--config",
            str(write_config(tmp_path, shares=shares)),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 2 and "[[shares]] #2 path:" in check.stderr, check.stderr
    assert "does not exist" in check.stderr

    vault = vault_factory(shares=shares)  # a real start takes it for an outage
    vault.wait_for(lambda: share_problems(vault), 10, "share problem reported")
    (problem,) = share_problems(vault)
    assert problem["path"] == str(usb) and "missing" in problem["message"]
    assert "usb" in vault.log() and "missing" in vault.log()

    usb.mkdir()  # the disk is mounted
    write_jpeg(usb / "a.jpg", 5)
    vault.wait_for(lambda: not share_problems(vault), 10, "share problem cleared")
    vault.wait_idle("usb", expect_done=1)
    assert vault.show(usb / "a.jpg")["state"] == "done"

    # A reload with another share that is not there yet keeps the daemon up, too.
    late = tmp_path / "late"
    shares.append({"name": "late", "path": str(late)})
    write_config(tmp_path, shares=shares)
    vault.signal(signal.SIGHUP)
    vault.wait_for(
        lambda: [p["path"] for p in share_problems(vault)] == [str(late)], 10, "late reported"
    )
    assert vault.proc is not None and vault.proc.poll() is None
