"""What `vaultctl status` shows: every stage's state in one JSON object.

Assembled here from the daemon's parts (catalog counts, watchers, throttle,
index, people, sidecar warnings, analyzers, problems), so app.py only builds
and runs the stages, and the query service owns what it answers.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from photovault import __version__

if TYPE_CHECKING:
    from photovault.app import Daemon


def status_of(d: Daemon) -> dict[str, Any]:
    """The status object (see README's `vaultctl status --json`)."""
    counts = d.catalog.counts()
    scans = d.catalog.last_scans()
    rate = d.throttle.measured_rate()
    shares = []
    for s in d.settings.shares:
        c = counts.get(s.name) or dict.fromkeys(
            ("pending", "processing", "done", "failed", "quarantined"), 0
        )
        w = d.watch.watchers.get(s.name)
        shares.append(
            {
                "name": s.name,
                "path": os.fspath(s.path),
                "read_only": s.read_only,
                "counts": c,
                "total": sum(c.values()),
                "watch": w.kind if w else "stopped",
                "watch_problem": w.fallback_reason if w else None,
                "scanning": s.name in d.watch.scanning,
                "last_scan": scans.get(s.name),
            }
        )
    quarantined = [
        {
            "path": os.fspath(d.resolve(r.share, r.relpath) or r.relpath),
            "share": r.share,
            "reason": r.last_error,
        }
        for r in d.catalog.quarantined()
    ]
    finished = [t for t in scans.values() if t]
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - d.started_at, 1),
        "shares": shares,
        "queue_depth": d.catalog.queue_depth(),
        "settling": len(d.watch.tracker),
        "index_pending": d.index.pending(),
        "memory_index": d.index.memory_status(),
        "paused": d.throttle.paused,
        "quiet_hours_active": d.throttle.quiet_active(),
        "rate_limit": d.throttle.current_rate(),
        "rate_per_second": round(rate, 2),
        "last_scan": min(finished) if finished and len(finished) == len(shares) else None,
        "scanning": sorted(d.watch.scanning),
        "quarantined": quarantined,
        "problems": [p.as_dict() for p in d.problems.snapshot()],
        "index_dirty": d.catalog.count_index_dirty(),
        "people": d.people.status(),
        "sidecar_warnings": [
            {"path": path, "warning": warning}
            for _fid, path, warning in d.catalog.sidecar_warnings()
        ],
        "analyzers": {
            "active": [
                {"name": a.name, "version": a.version, **a.status()} for a in d.analyzers.active
            ],
            "disabled": [{"name": n, "reason": r} for n, r in d.analyzers.disabled.items()],
        },
    }
