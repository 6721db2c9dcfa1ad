"""File states and the job queue, on top of the SQLite catalog.

Every transition is one transaction, so a crash at any point leaves each file
in a state the next start can resume from: `processing` rows are put back to
`pending` at start (`recover()`), and results are committed together with the
`done` state, so a photo is never half-done.

Paths are stored relative to their share as bytes (`os.fsencode`) because
file names on a share need not be valid UTF-8.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from photovault.catalog.db import connect
from photovault.catalog.indexbook import IndexBook
from photovault.catalog.rows import (
    STATES,
    ContentRecord,
    FileRow,
    decode_rel,
    display,
    encode_rel,
)
from photovault.catalog.rows import row_of as _row
from photovault.catalog.sidecars import SidecarBook

log = logging.getLogger(__name__)

__all__ = [
    "STATES",
    "Catalog",
    "ContentRecord",
    "FileRow",
    "decode_rel",
    "display",
    "encode_rel",
]


class Catalog(SidecarBook, IndexBook):
    """Thread-safe access to the catalog (one connection behind one lock).

    The writes are tiny and SQLite serialises writers anyway; one connection
    keeps WAL checkpoints and transactions simple to reason about.
    """

    def __init__(self, path: Path, *, max_attempts: int = 3, clock: Any = time.time) -> None:
        self.path = path
        self.max_attempts = max_attempts
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = connect(path)
        row = self._conn.execute("SELECT COALESCE(MAX(queue_seq), 0) FROM files").fetchone()
        self._seq = int(row[0])
        #: Objects told about deletes and moves after they are committed (the search
        #: index follows the catalog this way): methods forgotten(share, relpath),
        #: moved(share, src, dest), share_dropped(share).
        self.listeners: list[Any] = []

    def _notify(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("catalog listener %s.%s failed", type(listener).__name__, event)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- discovery -------------------------------------------------------

    def observe(self, share: str, relpath: str, size: int, mtime_ns: int) -> bool:
        """Record a settled file; queue it when new or changed. True when queued."""
        now = self._clock()
        rel = encode_rel(relpath)
        with self._tx() as db:
            cur = db.execute(
                "SELECT id, size, mtime_ns, state FROM files WHERE share = ? AND relpath = ?",
                (share, rel),
            ).fetchone()
            if cur is None:
                db.execute(
                    "INSERT INTO files (share, relpath, size, mtime_ns, state, queue_seq,"
                    " updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (share, rel, size, mtime_ns, self._next_seq(), now),
                )
                return True
            if cur["size"] == size and cur["mtime_ns"] == mtime_ns:
                return False
            # Changed content: start over, including a quarantined file that
            # the user has replaced with a good copy.
            db.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, state = 'pending', attempts = 0,"
                " last_error = NULL, queue_seq = ?, updated_at = ? WHERE id = ?",
                (size, mtime_ns, self._next_seq(), now, cur["id"]),
            )
            return True

    def forget(self, share: str, relpath: str) -> int:
        """A file (or a folder, with everything under it) was deleted."""
        rel = encode_rel(relpath)
        prefix = rel + b"/"
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM files WHERE share = ? AND (relpath = ? OR substr(relpath, 1, ?) = ?)",
                (share, rel, len(prefix), prefix),
            )
        if cur.rowcount:
            self._notify("forgotten", share, relpath)
        return cur.rowcount

    def move(self, share: str, src: str, dest: str) -> int:
        """A file or folder was renamed: carry its rows (and results) along.

        Returns how many rows moved; 0 means the source was unknown and the
        destination must be treated as a new file.
        """
        s, d = encode_rel(src), encode_rel(dest)
        sp = s + b"/"
        now = self._clock()
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, relpath FROM files WHERE share = ? AND"
                " (relpath = ? OR substr(relpath, 1, ?) = ?)",
                (share, s, len(sp), sp),
            ).fetchall()
            db.executemany("DELETE FROM sidecars WHERE file_id = ?", [(r["id"],) for r in rows])
            for r in rows:
                new = d + bytes(r["relpath"])[len(s) :]
                db.execute("DELETE FROM files WHERE share = ? AND relpath = ?", (share, new))
                db.execute(
                    "UPDATE files SET relpath = ?, updated_at = ? WHERE id = ?", (new, now, r["id"])
                )
        if rows:
            self._notify("moved", share, src, dest)
        return len(rows)

    def known(self, share: str) -> dict[str, tuple[int, int]]:
        """relpath -> (size, mtime_ns) of every catalogued file of a share."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT relpath, size, mtime_ns FROM files WHERE share = ?", (share,)
            ).fetchall()
        return {decode_rel(r["relpath"]): (r["size"], r["mtime_ns"]) for r in rows}

    def drop_share(self, share: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM files WHERE share = ?", (share,))
        self._notify("share_dropped", share)

    def record_scan(self, share: str, files_seen: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO scans (share, finished_at, files_seen) VALUES (?, ?, ?)"
                " ON CONFLICT (share) DO UPDATE SET finished_at = excluded.finished_at,"
                " files_seen = excluded.files_seen",
                (share, self._clock(), files_seen),
            )

    def last_scans(self) -> dict[str, float]:
        with self._lock:
            rows = self._conn.execute("SELECT share, finished_at FROM scans").fetchall()
        return {r["share"]: r["finished_at"] for r in rows}

    # -- queue -------------------------------------------------------------

    def recover(self) -> int:
        """At start: work that was in flight when we died goes back to the queue."""
        with self._tx() as db:
            return db.execute(
                "UPDATE files SET state = 'pending' WHERE state = 'processing'"
            ).rowcount

    def claim(self, limit: int, skip_shares: Iterable[str] = ()) -> list[FileRow]:
        """Move up to `limit` pending files to `processing` and return them; files of
        `skip_shares` (offline: their root is missing) wait in the queue."""
        skip = sorted(skip_shares)
        not_in = f" AND share NOT IN ({', '.join('?' * len(skip))})" if skip else ""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT * FROM files WHERE state = 'pending'{not_in} ORDER BY queue_seq LIMIT ?",
                (*skip, limit),
            ).fetchall()
            if rows:
                db.executemany(
                    "UPDATE files SET state = 'processing', updated_at = ? WHERE id = ?",
                    [(self._clock(), r["id"]) for r in rows],
                )
        return [_row(r) for r in rows]

    def requeue(self, file_ids: Iterable[int]) -> None:
        """Give claimed work back untouched (shutdown, pause)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET state = 'pending' WHERE id = ? AND state = 'processing'",
                [(i,) for i in file_ids],
            )

    def recheck(self, file_ids: Iterable[int]) -> int:
        """Send done files through the pipeline again (a live photo's video half once
        its still has arrived: its results are reused, only what changed runs)."""
        with self._tx() as db:
            return sum(
                db.execute(
                    "UPDATE files SET state = 'pending', attempts = 0, queue_seq = ?"
                    " WHERE id = ? AND state = 'done'",
                    (self._next_seq(), i),
                ).rowcount
                for i in file_ids
            )

    def fail(self, file_id: int, reason: str, *, permanent: bool = False) -> str:
        """Count a failed attempt; quarantine after max_attempts. Returns the new state."""
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                return "gone"
            attempts = row["attempts"] + 1
            state = "quarantined" if permanent or attempts >= self.max_attempts else "pending"
            db.execute(
                "UPDATE files SET state = ?, attempts = ?, last_error = ?, queue_seq = ?,"
                " updated_at = ? WHERE id = ?",
                (state, attempts, reason, self._next_seq(), self._clock(), file_id),
            )
            return state

    def content(self, sha256: str) -> ContentRecord | None:
        with self._lock:
            r = self._conn.execute("SELECT * FROM content WHERE sha256 = ?", (sha256,)).fetchone()
        if r is None:
            return None
        return ContentRecord(
            sha256=r["sha256"],
            analyzers=r["analyzers"],
            metadata=json.loads(r["metadata_json"]),
            results=json.loads(r["results_json"]),
            analysis_runs=r["analysis_runs"],
        )

    def complete(
        self,
        file_id: int,
        *,
        sha256: str,
        size: int,
        mtime_ns: int,
        error: str | None = None,
    ) -> None:
        """Mark a file done with the content it had when read.

        `error` keeps a partial failure visible (one analyzer failed on this
        photo) while the photo still counts as done.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state = 'done', sha256 = ?, size = ?, mtime_ns = ?,"
                " last_error = ?, updated_at = ?, index_dirty = 1"
                " WHERE id = ? AND state = 'processing'",
                (sha256, size, mtime_ns, error, self._clock(), file_id),
            )
            db.execute("DELETE FROM sidecars WHERE file_id = ?", (file_id,))

    def store_content(
        self,
        sha256: str,
        analyzers: str,
        metadata: dict[str, Any],
        results: dict[str, Any],
        done: list[tuple[int, int, int]],
        error: str | None = None,
    ) -> None:
        """Save the results of one inference and mark its files done, atomically.

        `done` lists (file_id, size, mtime_ns) of the files that had this content.
        """
        now = self._clock()
        gps = metadata.get("gps") or {}
        with self._tx() as db:
            db.execute(
                "INSERT INTO content (sha256, analyzers, taken_at, gps_lat, gps_lon, camera, lens,"
                " width, height, orientation, mime, metadata_json, results_json, analysis_runs,"
                " analyzed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT (sha256) DO UPDATE SET analyzers = excluded.analyzers,"
                " taken_at = excluded.taken_at, gps_lat = excluded.gps_lat,"
                " gps_lon = excluded.gps_lon, camera = excluded.camera, lens = excluded.lens,"
                " width = excluded.width, height = excluded.height,"
                " orientation = excluded.orientation, mime = excluded.mime,"
                " metadata_json = excluded.metadata_json, results_json = excluded.results_json,"
                " analysis_runs = content.analysis_runs + 1, analyzed_at = excluded.analyzed_at",
                (
                    sha256,
                    analyzers,
                    metadata.get("taken_at"),
                    gps.get("lat"),
                    gps.get("lon"),
                    metadata.get("camera"),
                    metadata.get("lens"),
                    metadata.get("width"),
                    metadata.get("height"),
                    metadata.get("orientation"),
                    metadata.get("mime"),
                    json.dumps(metadata),
                    json.dumps(results),
                    now,
                ),
            )
            db.executemany(
                "UPDATE files SET state = 'done', sha256 = ?, size = ?, mtime_ns = ?,"
                " last_error = ?, updated_at = ?, index_dirty = 1"
                " WHERE id = ? AND state = 'processing'",
                [(sha256, size, mtime, error, now, fid) for fid, size, mtime in done],
            )
            db.executemany("DELETE FROM sidecars WHERE file_id = ?", [(f,) for f, _, _ in done])

    # -- reading -----------------------------------------------------------

    def get(self, share: str, relpath: str) -> FileRow | None:
        with self._lock:
            r = self._conn.execute(
                "SELECT * FROM files WHERE share = ? AND relpath = ?", (share, encode_rel(relpath))
            ).fetchone()
        return _row(r) if r else None

    def counts(self) -> dict[str, dict[str, int]]:
        """share -> state -> count (every state present, zeros included)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT share, state, COUNT(*) AS n FROM files GROUP BY share, state"
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["share"], dict.fromkeys(STATES, 0))[r["state"]] = r["n"]
        return out

    def queue_depth(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM files WHERE state IN ('pending', 'processing')"
            ).fetchone()
        return int(row[0])

    def quarantined(self, limit: int = 100) -> list[FileRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM files WHERE state = 'quarantined' ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row(r) for r in rows]

    def files_with_content(self, sha256: str) -> list[FileRow]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM files WHERE sha256 = ?", (sha256,)).fetchall()
        return [_row(r) for r in rows]

    def files_of_share(self, share: str, state: str = "done") -> list[FileRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM files WHERE share = ? AND state = ? ORDER BY id", (share, state)
            ).fetchall()
        return [_row(r) for r in rows]

    def get_by_id(self, file_id: int) -> FileRow | None:
        with self._lock:
            r = self._conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        return _row(r) if r else None

    def requeue_stale(self, required: dict[str, str]) -> int:
        """Queue done files whose stored results lack a current analyzer version.

        Called when the analyzer set or a model changes: the worker then runs only
        the missing analyzers on them (a new CLIP model re-embeds, nothing else).
        """
        from photovault.results import parse_signature

        with self._lock:
            rows = self._conn.execute("SELECT sha256, analyzers FROM content").fetchall()
        stale = [
            r["sha256"]
            for r in rows
            if any(parse_signature(r["analyzers"]).get(n) != v for n, v in required.items())
        ]
        count = 0
        with self._tx() as db:
            for sha in stale:
                count += db.execute(
                    "UPDATE files SET state = 'pending', attempts = 0, queue_seq = ?"
                    " WHERE sha256 = ? AND state = 'done'",
                    (self._next_seq(), sha),
                ).rowcount
        return count

    def done_files(self, batch: int = 1000) -> Iterator[list[FileRow]]:
        """Every done file, in batches (rebuilding the search index from the catalog)."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT * FROM files WHERE state = 'done' AND id > ? ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            last = rows[-1]["id"]
            yield [_row(r) for r in rows]

    def count_done(self) -> int:
        with self._lock:
            return int(
                self._conn.execute("SELECT COUNT(*) FROM files WHERE state = 'done'").fetchone()[0]
            )

    # -- share outages and retries (watch stage) ---------------------------------

    def count_share(self, share: str) -> int:
        """How many files of a share are catalogued, in any state."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM files WHERE share = ?", (share,)
            ).fetchone()
        return int(row[0])

    def quarantined_of(self, share: str) -> dict[str, tuple[float, str | None]]:
        """relpath -> (when it was quarantined, why) for a share's quarantined files."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT relpath, updated_at, last_error FROM files"
                " WHERE share = ? AND state = 'quarantined'",
                (share,),
            ).fetchall()
        return {decode_rel(r["relpath"]): (r["updated_at"], r["last_error"]) for r in rows}

    def retry_failed_with(self, reason_like: str) -> int:
        """Queue again every failed or quarantined file whose error matches this SQL
        LIKE pattern, with a full set of attempts (their cause was installed since:
        videos that waited for ffmpeg). Returns how many."""
        with self._tx() as db:
            return db.execute(
                "UPDATE files SET state = 'pending', attempts = 0, last_error = NULL,"
                " queue_seq = ?, updated_at = ? WHERE state IN ('quarantined', 'pending')"
                " AND last_error LIKE ?",
                (self._next_seq(), self._clock(), reason_like),
            ).rowcount

    def retry_quarantined(
        self, share: str, relpath: str, *, below: bool = False, reason_like: str | None = None
    ) -> int:
        """Give quarantined files another full set of attempts (their mode or owner
        changed). `below`: every quarantined file under the folder `relpath`;
        `reason_like`: only those whose error matches this SQL LIKE pattern.
        Returns how many went back to the queue."""
        rel = encode_rel(relpath)
        prefix = rel + b"/"
        where = "share = ? AND state = 'quarantined' AND "
        args: list[Any] = [share]
        if below:
            where += "substr(relpath, 1, ?) = ?"
            args += [len(prefix), prefix]
        else:
            where += "relpath = ?"
            args.append(rel)
        if reason_like is not None:
            where += " AND last_error LIKE ?"
            args.append(reason_like)
        with self._tx() as db:
            return db.execute(
                "UPDATE files SET state = 'pending', attempts = 0, last_error = NULL,"
                f" queue_seq = ?, updated_at = ? WHERE {where}",
                [self._next_seq(), self._clock(), *args],
            ).rowcount
