"""ShareWatcher on real folders with real watchdog observers.

Running out of inotify watches cannot be provoked in every sandbox (the
limits are not always enforced), so that one kernel condition is injected
through the observer factory; everything else is real.
"""

from __future__ import annotations

import errno
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
