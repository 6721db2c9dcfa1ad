"""ShareWatcher on real folders with real watchdog observers.

Running out of inotify watches cannot be provoked in every sandbox (the
limits are not always enforced), so that one kernel condition is injected
through the observer factory; everything else is real.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

import pytest
from watchdog.observers import Observer

from photovault.catalog.store import Catalog
from photovault.watch.settle import SettleTracker
from photovault.watch.watcher import ShareWatcher


class ExhaustedObserver(Observer):
    def start(self) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


@pytest.fixture
def parts(tmp_path: Path):
    share = tmp_path / "share"
    share.mkdir()
    catalog = Catalog(tmp_path / "c.sqlite3")
    ready: list[str] = []

    def on_ready(s: str, rel: str, size: int, mtime: int) -> None:
        ready.append(rel)
        catalog.observe(s, rel, size, mtime)

    tracker = SettleTracker(0.2, 2.0, on_ready)
    return share, catalog, tracker, ready


def wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met")


def test_exhausted_inotify_falls_back_to_polling_and_still_sees_files(parts) -> None:
    share, catalog, tracker, ready = parts
    w = ShareWatcher(
        "s", share, catalog, tracker, poll_interval=0.3, inotify_factory=ExhaustedObserver
    )
    w.start()
    try:
        assert w.kind == "polling"
        assert "watch limit" in (w.fallback_reason or "")
        (share / "a.jpg").write_bytes(b"x" * 100)

        def settled() -> bool:
            tracker.poll()
            return ready == ["a.jpg"]

        wait(settled)
    finally:
        w.stop()


def test_inotify_only_mode_does_not_hide_the_failure(parts) -> None:
    share, catalog, tracker, _ = parts
    w = ShareWatcher(
        "s", share, catalog, tracker, mode="inotify", inotify_factory=ExhaustedObserver
    )
    with pytest.raises(OSError):
        w.start()


def test_a_dead_observer_is_replaced_by_polling(parts) -> None:
    share, catalog, tracker, _ = parts
    w = ShareWatcher("s", share, catalog, tracker, poll_interval=0.3)
    w.start()
    assert w.kind == "inotify"
    w._observer.stop()  # the observer thread dies, as when a new folder hits the limit
    w._observer.join(5)
    w.check()
    try:
        assert w.kind == "polling" and w.healthy()
    finally:
        w.stop()


def test_events_inside_ignored_folders_never_reach_the_tracker(parts) -> None:
    share, catalog, tracker, _ = parts
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    try:
        (share / "@eaDir").mkdir()
        (share / "@eaDir" / "thumb.jpg").write_bytes(b"x")
        (share / "IMG_1.jpg.part").write_bytes(b"x")
        (share / "real.jpg").write_bytes(b"x")
        wait(lambda: len(tracker) >= 1)
        time.sleep(0.5)
        assert len(tracker) == 1
    finally:
        w.stop()


def settle(tracker: SettleTracker, seconds: float) -> None:
    """Run the settle tracker's poll for a while, as the daemon's poll loop does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tracker.poll()
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["auto", "polling"])
def test_a_symlink_loop_made_in_the_share_adds_no_duplicates(parts, mode: str) -> None:
    share, catalog, tracker, _ = parts
    (share / "a.jpg").write_bytes(b"x" * 100)
    w = ShareWatcher("s", share, catalog, tracker, mode=mode, poll_interval=0.2)
    w.start()
    try:
        (share / "d").mkdir()
        (share / "d" / "up").symlink_to("..")  # ln -s .. d/up
        (share / "d" / "b.jpg").write_bytes(b"y" * 100)
        wait(lambda: (tracker.poll(), "d/b.jpg" in catalog.known("s"))[1])
        settle(tracker, 1.0)
        assert sorted(catalog.known("s")) == ["d/b.jpg"]
    finally:
        w.stop()


@pytest.mark.parametrize("mode", ["auto", "polling"])
def test_a_folder_moved_in_with_a_symlink_loop_is_not_followed(
    parts, tmp_path: Path, mode: str
) -> None:
    share, catalog, tracker, _ = parts
    (share / "a.jpg").write_bytes(b"x" * 100)
    catalog.observe("s", "a.jpg", 100, (share / "a.jpg").stat().st_mtime_ns)
    w = ShareWatcher("s", share, catalog, tracker, mode=mode, poll_interval=0.2)
    w.start()
    try:
        trip = tmp_path / "outside" / "trip"
        trip.mkdir(parents=True)
        (trip / "b.jpg").write_bytes(b"y" * 100)
        (trip / "up").symlink_to("..")
        (trip / "root").symlink_to(share)
        trip.rename(share / "trip")
        wait(lambda: (tracker.poll(), "trip/b.jpg" in catalog.known("s"))[1])
        settle(tracker, 1.0)
        assert sorted(catalog.known("s")) == ["a.jpg", "trip/b.jpg"]
    finally:
        w.stop()


def catalogue(catalog: Catalog, share: Path, *rels: str) -> None:
    for rel in rels:
        p = share / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode() * 10)
        catalog.observe("s", rel, p.stat().st_size, p.stat().st_mtime_ns)


@pytest.mark.parametrize("mode", ["auto", "polling"])
def test_a_share_renamed_away_forgets_nothing_and_resumes_when_back(
    parts, tmp_path: Path, mode: str
) -> None:
    share, catalog, tracker, _ = parts
    catalogue(catalog, share, "a.jpg", "b.jpg", "sub/c.jpg")
    w = ShareWatcher("s", share, catalog, tracker, mode=mode, poll_interval=0.2)
    w.start()
    try:
        away = tmp_path / "away"
        share.rename(away)
        # inotify follows the moved folder: these arrive as deletions in the share.
        (away / "a.jpg").unlink()
        shutil.rmtree(away / "sub")
        time.sleep(1.0)
        assert sorted(catalog.known("s")) == ["a.jpg", "b.jpg", "sub/c.jpg"]
        assert w.check() is False
        assert w.kind == "offline" and "missing" in (w.outage or "")

        away.rename(share)
        assert w.check() is True  # watched afresh: the caller rescans
        assert w.outage is None and w.kind == ("polling" if mode == "polling" else "inotify")
        assert w.check() is False
        (share / "b.jpg").unlink()  # believed again
        wait(lambda: "b.jpg" not in catalog.known("s"))
    finally:
        w.stop()


def test_a_root_replaced_by_an_empty_folder_is_an_outage_until_the_disk_is_back(
    parts, tmp_path: Path
) -> None:
    share, catalog, tracker, _ = parts
    catalogue(catalog, share, "a.jpg", "b.jpg")
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    try:
        disk = tmp_path / "disk"
        share.rename(disk)
        share.mkdir()  # what an unmounted disk leaves: the bare mount point
        assert w.check() is False
        assert "empty" in (w.outage or "") and w.kind == "offline"
        share.rmdir()
        disk.rename(share)
        assert w.check() is True and w.outage is None and w.kind == "inotify"
        assert sorted(catalog.known("s")) == ["a.jpg", "b.jpg"]
    finally:
        w.stop()


def test_a_root_replaced_by_another_folder_is_watched_afresh(parts, tmp_path: Path) -> None:
    share, catalog, tracker, _ = parts
    catalogue(catalog, share, "a.jpg")
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    try:
        share.rename(tmp_path / "old")
        share.mkdir()
        (share / "new.jpg").write_bytes(b"n" * 100)
        (tmp_path / "old" / "a.jpg").unlink()  # in the old folder: not a deletion here
        time.sleep(0.5)
        assert "a.jpg" in catalog.known("s")
        assert w.check() is True and w.outage is None  # rescanning decides about a.jpg
        (share / "later.jpg").write_bytes(b"l" * 100)
        wait(lambda: (tracker.poll(), "later.jpg" in catalog.known("s"))[1])
    finally:
        w.stop()


def test_a_watcher_started_on_a_missing_root_starts_when_it_appears(parts, tmp_path: Path) -> None:
    _share, catalog, tracker, _ = parts
    missing = tmp_path / "later"
    w = ShareWatcher("s", missing, catalog, tracker)
    w.start()
    try:
        assert w.kind == "offline" and "missing" in (w.outage or "")
        assert w.check() is False
        missing.mkdir()
        assert w.check() is True and w.kind == "inotify"
        (missing / "a.jpg").write_bytes(b"x" * 100)
        wait(lambda: (tracker.poll(), "a.jpg" in catalog.known("s"))[1])
    finally:
        w.stop()


def test_a_stopped_watcher_stays_stopped(parts) -> None:
    share, catalog, tracker, _ = parts
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    w.stop()
    assert w.check() is False and w.kind == "stopped"


def test_chmod_of_a_quarantined_file_gives_it_another_try(parts) -> None:
    share, catalog, tracker, _ = parts
    catalogue(catalog, share, "a.jpg", "b.jpg")
    for rel in ("a.jpg", "b.jpg"):
        row = catalog.get("s", rel)
        assert row is not None
        catalog.fail(row.id, "cannot open: Permission denied", permanent=True)
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    try:
        os.chmod(share / "a.jpg", 0o644)
        wait(lambda: catalog.get("s", "a.jpg").state == "pending")  # type: ignore[union-attr]
        a = catalog.get("s", "a.jpg")
        assert a is not None and (a.attempts, a.last_error) == (0, None)
        assert catalog.get("s", "b.jpg").state == "quarantined"  # type: ignore[union-attr]
    finally:
        w.stop()


def test_chmod_of_a_folder_retries_its_files_quarantined_for_permission(parts) -> None:
    share, catalog, tracker, _ = parts
    catalogue(catalog, share, "sub/a.jpg", "sub/bad.jpg", "other.jpg")
    for rel, why in (
        ("sub/a.jpg", "cannot open: Permission denied"),
        ("sub/bad.jpg", "image file is truncated"),
        ("other.jpg", "cannot open: Permission denied"),
    ):
        row = catalog.get("s", rel)
        assert row is not None
        catalog.fail(row.id, why, permanent=True)
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    try:
        os.chmod(share / "sub", 0o755)
        wait(lambda: catalog.get("s", "sub/a.jpg").state == "pending")  # type: ignore[union-attr]
        assert catalog.get("s", "sub/bad.jpg").state == "quarantined"  # type: ignore[union-attr]
        assert catalog.get("s", "other.jpg").state == "quarantined"  # type: ignore[union-attr]
    finally:
        w.stop()


def test_files_held_back_by_a_scan_are_reported_while_the_root_stays_watched(parts) -> None:
    share, catalog, tracker, _ = parts
    catalogue(catalog, share, "a.jpg")
    w = ShareWatcher("s", share, catalog, tracker)
    w.start()
    try:
        w.held = "10 of 10 photos of share s are gone from disk"
        assert w.outage == w.held and w.kind == "inotify"
        assert w.check() is False  # no rescan loop: the root itself is fine
        w.held = None
        assert w.outage is None
    finally:
        w.stop()
