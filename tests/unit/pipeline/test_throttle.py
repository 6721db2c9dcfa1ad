from __future__ import annotations

import threading
from datetime import datetime

from photovault.pipeline.throttle import QuietHours, Throttle


def test_quiet_hours_match_the_cron_minutes() -> None:
    q = QuietHours("* 8-22 * * *")
    assert q.active(datetime(2026, 11, 26, 8, 0))
    assert q.active(datetime(2026, 11, 26, 22, 59))
    assert not q.active(datetime(2026, 11, 26, 23, 0))
    assert not q.active(datetime(2026, 11, 26, 7, 59))


def test_no_quiet_hours_are_never_active() -> None:
    assert not QuietHours("").active()


def test_pause_sets_the_allowed_rate_to_zero_and_resume_lifts_it() -> None:
    t = Throttle(0, QuietHours(""), 0)
    assert t.current_rate() is None
    t.pause()
    assert t.current_rate() == 0.0
    t.resume()
    assert t.current_rate() is None


def test_a_rate_limit_spaces_batches() -> None:
    now = [0.0]
    t = Throttle(4.0, QuietHours(""), 0, clock=lambda: now[0])
    stop = threading.Event()
    assert t.acquire(16, stop) == 4  # at most one second's worth at once
    assert t._next_at == 1.0
    now[0] = 1.0
    assert t.acquire(16, stop) == 4


def test_quiet_hours_apply_their_own_rate() -> None:
    t = Throttle(10, QuietHours("* * * * *"), 2.0)
    assert t.current_rate() == 2.0
