from __future__ import annotations

from pathlib import Path

from photovault.watch.settle import SettleTracker


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(settle: float = 2.0, open_timeout: float = 30.0):
    clock = Clock()
    ready: list[tuple[str, str, int, int]] = []
    tracker = SettleTracker(settle, open_timeout, lambda *a: ready.append(a), clock=clock)
    return tracker, clock, ready


def test_a_growing_file_is_held_until_it_stops_changing(tmp_path: Path) -> None:
    tracker, clock, ready = make()
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 10)
    tracker.touch("s", "a.jpg", f, writing=None)
    tracker.poll()
    for _ in range(5):
        clock.t += 1.5
        with f.open("ab") as fh:
            fh.write(b"y" * 10)
        tracker.poll()
        assert ready == []
    clock.t += 2.5
    tracker.poll()
    assert ready == [("s", "a.jpg", 60, f.stat().st_mtime_ns)]
    assert len(tracker) == 0


def test_a_file_still_open_for_writing_waits_for_close(tmp_path: Path) -> None:
    tracker, clock, ready = make(settle=1.0, open_timeout=30.0)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    tracker.touch("s", "a.jpg", f, writing=True)
    tracker.poll()
    clock.t += 5
    tracker.poll()
    assert ready == []
    tracker.touch("s", "a.jpg", f, writing=False)
    tracker.poll()
    assert len(ready) == 1


def test_a_stable_file_never_reported_closed_goes_after_the_open_timeout(tmp_path: Path) -> None:
    tracker, clock, ready = make(settle=1.0, open_timeout=10.0)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    tracker.touch("s", "a.jpg", f, writing=True)
    tracker.poll()
    clock.t += 9
    tracker.poll()
    assert ready == []
    clock.t += 2
    tracker.poll()
    assert len(ready) == 1


def test_a_file_deleted_while_settling_is_dropped(tmp_path: Path) -> None:
    tracker, clock, ready = make()
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    tracker.touch("s", "a.jpg", f, writing=None)
    f.unlink()
    clock.t += 10
    tracker.poll()
    assert ready == [] and len(tracker) == 0
