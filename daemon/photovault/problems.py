"""Current faults, kept in one place (Syncthing's folder errors, Prometheus' lastError).

Every stage reports what is wrong *now* here: a full or unwritable state disk,
a missing share, a dead stage, exiftool down, sidecars that cannot be written,
an index repair in progress. `vaultctl status` prints the list first and exits
1 while it is not empty; the metrics export one gauge per kind. A problem is
keyed by (kind, key) and clears itself when its reporter says the cause went
away, so the list is always the present state, never a log.

A leaf module: it imports nothing of ours, so every stage may use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The kinds a problem can have (the `kind` label of `photovault_problems`).
KINDS = (
    "disk",  # state dir full or not writable
    "share",  # share root missing or unreadable
    "stage",  # a pipeline thread died, or keeps failing and is backing off
    "exiftool",  # metadata reader down
    "sidecars",  # sidecars that cannot be written
    "index",  # search index repair in progress or failing
    "catalog",  # catalog writes failing
    "ffmpeg",  # ffmpeg/ffprobe missing: videos cannot be read
)


@dataclass(frozen=True)
class Problem:
    kind: str
    key: str
    message: str
    since: float
    path: str | None = None
    count: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "since": self.since, "message": self.message}
        if self.path is not None:
            out["path"] = self.path
        if self.count is not None:
            out["count"] = self.count
        return out


class Problems:
    """Thread-safe set of current problems; `report` is idempotent, `clear` ends one."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Problem] = {}

    def report(
        self,
        kind: str,
        message: str,
        *,
        key: str = "",
        path: str | None = None,
        count: int | None = None,
    ) -> bool:
        """Record (or update) a problem. True when it is new (worth one log line)."""
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        with self._lock:
            old = self._items.get((kind, key))
            since = old.since if old is not None else self._clock()
            self._items[(kind, key)] = Problem(kind, key, message, since, path, count)
            return old is None

    def clear(self, kind: str, key: str = "") -> bool:
        """The cause went away. True when there was such a problem."""
        with self._lock:
            return self._items.pop((kind, key), None) is not None

    def clear_kind(self, kind: str, keep: Callable[[str], bool] = lambda key: False) -> None:
        """Clear every problem of a kind whose key `keep` does not want kept."""
        with self._lock:
            for k in [k for k in self._items if k[0] == kind and not keep(k[1])]:
                del self._items[k]

    def active(self, kind: str, key: str = "") -> bool:
        with self._lock:
            return (kind, key) in self._items

    def snapshot(self) -> list[Problem]:
        """Oldest first, so the root cause tends to lead."""
        with self._lock:
            return sorted(self._items.values(), key=lambda p: (p.since, p.kind, p.key))

    def counts(self) -> dict[str, int]:
        """kind -> number of current problems (every kind present, zeros included)."""
        out = dict.fromkeys(KINDS, 0)
        with self._lock:
            for kind, _key in self._items:
                out[kind] += 1
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
