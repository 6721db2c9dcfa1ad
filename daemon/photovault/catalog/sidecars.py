"""The catalog's sidecar bookkeeping: what we wrote beside each photo, what a person
changed there, and which sidecars are due (the sidecar stage's work list).

A mixin of `Catalog` (one connection and lock for the whole catalog, so a file's
state and its sidecar record change in one transaction); kept apart because it is
its own job with its own tables (`sidecars`, `sidecar_rejected`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from photovault.catalog.rows import FileRow, row_of


class SidecarBook:
    """Sidecar records of `Catalog` (see the module docstring)."""

    _lock: threading.RLock
    _conn: sqlite3.Connection
    _clock: Callable[[], float]

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def sidecar_work(
        self, limit: int, retry_after: float = 600.0, exclude: Iterable[int] = ()
    ) -> list[FileRow]:
        """Done files whose sidecar is not written yet (or failed long enough ago).

        New work comes before retries of failed sidecars; a failure is recorded
        with the time, so a sidecar that keeps failing is tried again only every
        `retry_after` seconds and never holds up the others. `exclude`: file ids
        the caller is holding back (its record could not be written).
        """
        skip = sorted({int(i) for i in exclude})[:500]
        not_in = f" AND f.id NOT IN ({', '.join('?' * len(skip))})" if skip else ""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.* FROM files f LEFT JOIN sidecars s ON s.file_id = f.id"
                " WHERE f.state = 'done' AND (s.file_id IS NULL OR s.state = 'imported')"
                + not_in
                + " ORDER BY f.id LIMIT ?",
                (*skip, limit),
            ).fetchall()
            if len(rows) < limit:
                rows += self._conn.execute(
                    "SELECT f.* FROM sidecars s JOIN files f ON f.id = s.file_id"
                    " WHERE s.state = 'failed' AND s.updated_at < ? AND f.state = 'done'"
                    + not_in
                    + " ORDER BY f.id LIMIT ?",
                    (self._clock() - retry_after, *skip, limit - len(rows)),
                ).fetchall()
        return [row_of(r) for r in rows]

    def record_sidecar(
        self,
        file_id: int,
        state: str,
        path: str | None,
        fingerprint: tuple[int, int, str] | None = None,
        warning: str | None = None,
    ) -> None:
        mtime, size, sha = fingerprint or (None, None, None)
        if warning is not None:  # an OS error names the file: not always valid UTF-8
            warning = warning.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        with self._tx() as db:
            db.execute(
                "INSERT INTO sidecars (file_id, state, path, mtime_ns, size, sha256, warning,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id) DO UPDATE SET"
                " state = excluded.state, path = excluded.path, mtime_ns = excluded.mtime_ns,"
                " size = excluded.size, sha256 = excluded.sha256, warning = excluded.warning,"
                " updated_at = excluded.updated_at",
                (
                    file_id,
                    state,
                    os.fsencode(path) if path else None,
                    mtime,
                    size,
                    sha,
                    warning,
                    self._clock(),
                ),
            )

    def record_import(self, file_id: int, path: str, imported: dict[str, Any]) -> None:
        """What a person's sidecar holds. A sidecar we had left untouched (skipped:
        malformed, a link) that now reads cleanly is queued to be written again."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO sidecars (file_id, state, path, imported, updated_at)"
                " VALUES (?, 'imported', ?, ?, ?) ON CONFLICT (file_id) DO UPDATE SET"
                " imported = excluded.imported, state = CASE WHEN sidecars.state = 'skipped'"
                " AND sidecars.path IS NOT NULL THEN 'imported' ELSE sidecars.state END",
                (file_id, os.fsencode(path), json.dumps(imported), self._clock()),
            )

    def reject_keywords(self, file_id: int, keywords: Iterable[str]) -> int:
        """Remember keywords ("A|B") a person removed from this file's sidecar; they
        are never written to it again. Returns how many are new."""
        now = self._clock()
        with self._tx() as db:
            return sum(
                db.execute(
                    "INSERT OR IGNORE INTO sidecar_rejected (file_id, keyword, rejected_at)"
                    " VALUES (?, ?, ?)",
                    (file_id, keyword, now),
                ).rowcount
                for keyword in dict.fromkeys(keywords)
            )

    def rejected_keywords(self, file_id: int) -> set[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT keyword FROM sidecar_rejected WHERE file_id = ?", (file_id,)
            ).fetchall()
        return {r[0] for r in rows}

    def person_keywords(self, file_id: int) -> tuple[set[str], list[str]]:
        """(keywords of ours a person removed, keywords they added) in this file's
        sidecar, "A|B" each; see `sidecar.keywords.person_tags`."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT keyword FROM sidecar_rejected WHERE file_id = ?", (file_id,)
            ).fetchall()
            r = self._conn.execute(
                "SELECT imported FROM sidecars WHERE file_id = ?", (file_id,)
            ).fetchone()
        imported = json.loads(r[0]) if r is not None and r[0] else {}
        added = imported.get("keywords") if isinstance(imported, dict) else None
        return {row[0] for row in rows}, [str(k) for k in added or []]

    def sidecar_failures(self) -> tuple[int, str | None, str | None]:
        """(how many sidecars failed, the latest one's path and reason)."""
        with self._lock:
            n = self._conn.execute(
                "SELECT COUNT(*) FROM sidecars WHERE state = 'failed'"
            ).fetchone()[0]
            r = self._conn.execute(
                "SELECT path, warning FROM sidecars WHERE state = 'failed'"
                " ORDER BY updated_at DESC LIMIT 1"
            ).fetchone()
        if not n or r is None:
            return 0, None, None
        return int(n), os.fsdecode(r[0]) if r[0] else None, r[1]

    def sidecar(self, file_id: int) -> dict[str, Any] | None:
        with self._lock:
            r = self._conn.execute(
                "SELECT * FROM sidecars WHERE file_id = ?", (file_id,)
            ).fetchone()
        if r is None:
            return None
        return {
            "state": r["state"],
            "path": os.fsdecode(r["path"]) if r["path"] else None,
            "fingerprint": (r["mtime_ns"], r["size"], r["sha256"]) if r["sha256"] else None,
            "warning": r["warning"],
            "imported": json.loads(r["imported"]) if r["imported"] else None,
        }

    def files_by_sidecar(self, path: str) -> list[int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT file_id FROM sidecars WHERE path = ?", (os.fsencode(path),)
            ).fetchall()
        return [r[0] for r in rows]

    def sidecar_warnings(self, limit: int = 100) -> list[tuple[int, str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT file_id, path, warning FROM sidecars WHERE warning IS NOT NULL"
                " ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(r[0], os.fsdecode(r[1]) if r[1] else "", r[2]) for r in rows]

    def reset_sidecars(self, share: str | None) -> int:
        """Forget what we wrote so the sidecar stage writes them all again.

        Keywords a person removed (`reject_keywords`) stay remembered."""
        with self._tx() as db:
            if share is None:
                return db.execute("DELETE FROM sidecars").rowcount
            return db.execute(
                "DELETE FROM sidecars WHERE file_id IN (SELECT id FROM files WHERE share = ?)",
                (share,),
            ).rowcount

    def reset_sidecars_of(self, shas: list[str]) -> int:
        """Rewrite the sidecars of every file with one of these contents."""
        count = 0
        with self._tx() as db:
            for sha in shas:
                count += db.execute(
                    "DELETE FROM sidecars WHERE file_id IN (SELECT id FROM files WHERE sha256 = ?)",
                    (sha,),
                ).rowcount
        return count

    def forget_sidecars(self, file_ids: Iterable[int]) -> int:
        """Forget what we wrote for these files, so the sidecar stage writes them again."""
        ids = [(int(i),) for i in file_ids]
        if not ids:
            return 0
        with self._tx() as db:
            cur = db.executemany("DELETE FROM sidecars WHERE file_id = ?", ids)
        return cur.rowcount

    def written_sidecars(self, batch: int = 20000) -> Iterator[list[tuple[FileRow, str]]]:
        """(done file, sidecar path) of every sidecar we wrote, in batches."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT f.*, s.path AS s_path FROM files f JOIN sidecars s ON s.file_id = f.id"
                    " WHERE f.state = 'done' AND s.state IN ('written', 'unchanged')"
                    " AND s.path IS NOT NULL AND f.id > ? ORDER BY f.id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            last = rows[-1]["id"]
            yield [(row_of(r), os.fsdecode(r["s_path"])) for r in rows]

    def sidecar_records(self, limit: int) -> list[tuple[FileRow, dict[str, Any] | None]]:
        """Done files whose sidecar record is missing or not settled, with the record."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.*, s.state AS s_state, s.warning AS s_warning FROM files f"
                " LEFT JOIN sidecars s ON s.file_id = f.id WHERE f.state = 'done' AND"
                " (s.file_id IS NULL OR s.state NOT IN"
                "('written', 'unchanged', 'empty', 'imported'))"
                " ORDER BY f.id LIMIT ?",
                (limit,),
            ).fetchall()
        out: list[tuple[FileRow, dict[str, Any] | None]] = []
        for r in rows:
            record = {"state": r["s_state"], "warning": r["s_warning"]}
            out.append((row_of(r), None if r["s_state"] is None else record))
        return out
