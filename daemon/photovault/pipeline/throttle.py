"""Rate limits, quiet hours, pause/resume, and the measured ingest rate.

A NAS is shared with everything else in a home: the user caps images per
second, sets quiet hours (a cron expression of the minutes that are quiet,
e.g. "* 8-22 * * 1-5") with their own rate (0 = paused), and can pause the
worker at any time. Waits are sliced so pause and stop act within a second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

_SLICE = 0.2


class QuietHours:
    """True for the minutes a cron expression matches."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._trigger = CronTrigger.from_crontab(expression) if expression else None

    def active(self, now: datetime | None = None) -> bool:
        if self._trigger is None:
            return False
        now = (now or datetime.now().astimezone()).replace(second=0, microsecond=0)
        fire = self._trigger.get_next_fire_time(None, now - timedelta(microseconds=1))
        return fire is not None and fire.replace(tzinfo=None) == now.replace(tzinfo=None)


class Throttle:
    """Decides how many images the worker may take now."""

    def __init__(
        self,
        max_rate: float,
        quiet: QuietHours,
        quiet_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rate = max_rate
        self.quiet = quiet
        self.quiet_rate = quiet_rate
        self._clock = clock
        self._user_paused = threading.Event()
        self._wake = threading.Event()
        self._next_at = 0.0
        self._done: deque[float] = deque(maxlen=4096)

    # -- user controls -----------------------------------------------------

    def pause(self) -> None:
        self._user_paused.set()
        self._wake.set()

    def resume(self) -> None:
        self._user_paused.clear()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._user_paused.is_set()

    def quiet_active(self) -> bool:
        return self.quiet.active()

    def current_rate(self) -> float | None:
        """Images/s allowed now; None = unlimited, 0 = paused."""
        if self._user_paused.is_set():
            return 0.0
        if self.quiet.active():
            return self.quiet_rate
        return self.max_rate or None

    # -- the worker's side -------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def acquire(self, want: int, stop: threading.Event) -> int:
        """Block until work may proceed; return how many images (<= want) now.

        Returns 0 only when `stop` is set.
        """
        while not stop.is_set():
            rate = self.current_rate()
            if rate == 0.0:
                self.wait(stop, 1.0)
                continue
            if rate is None:
                return want
            now = self._clock()
            if now < self._next_at:
                self.wait(stop, min(self._next_at - now, _SLICE))
                continue
            n = max(1, min(want, int(rate)))
            self._next_at = max(now, self._next_at) + n / rate
            return n
        return 0

    def wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep up to `seconds` (in slices), or until `wake()`: new work or a resume."""
        self._wake.wait(min(seconds, _SLICE))
        self._wake.clear()

    def record_done(self, n: int) -> None:
        now = self._clock()
        for _ in range(n):
            self._done.append(now)

    def measured_rate(self, window: float = 60.0) -> float:
        """Images/s completed over the last `window` seconds."""
        now = self._clock()
        recent = [t for t in self._done if now - t <= window]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], 1.0)
        return len(recent) / span
