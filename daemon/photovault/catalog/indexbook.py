"""The catalog's search-index bookkeeping: which done files the index has durably
written (`index_dirty`), for the repair at start and rescan and for `vaultctl check`.

A mixin of `Catalog`, like catalog/sidecars.py.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from photovault.catalog.rows import FileRow, decode_rel, row_of


class IndexBook:
    """Index bookkeeping of `Catalog` (see the module docstring)."""

    _lock: threading.RLock
    _conn: sqlite3.Connection
    _clock: Callable[[], float]

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def mark_indexed(self, file_ids: Iterable[int]) -> None:
        """The search index has durably written these files' rows."""
        ids = [(int(i),) for i in file_ids]
        if ids:
            with self._tx() as db:
                db.executemany("UPDATE files SET index_dirty = 0 WHERE id = ?", ids)

    def mark_index_dirty(self, file_ids: Iterable[int]) -> None:
        """These files' index rows must be written again (a repair is due)."""
        ids = [(int(i),) for i in file_ids]
        if ids:
            with self._tx() as db:
                db.executemany("UPDATE files SET index_dirty = 1 WHERE id = ?", ids)

    def index_dirty(self, limit: int = 2000) -> list[FileRow]:
        """Done files whose index row may be missing or stale (oldest first)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM files INDEXED BY files_index_dirty"
                " WHERE index_dirty = 1 AND state = 'done' ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [row_of(r) for r in rows]

    def count_index_dirty(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM files INDEXED BY files_index_dirty"
                " WHERE index_dirty = 1 AND state = 'done'"
            ).fetchone()
        return int(row[0])

    def done_keys(self, batch: int = 20000) -> Iterator[list[tuple[int, str, str, str | None]]]:
        """(id, share, relpath, sha256) of every done file, in id order and batches:
        what the search index must hold (the consistency check compares them)."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT id, share, relpath, sha256 FROM files WHERE state = 'done' AND id > ?"
                    " ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [(r[0], r[1], decode_rel(r[2]), r[3]) for r in rows]

    def existing_ids(self, file_ids: list[int]) -> set[int]:
        """Which of these file ids the catalog still has (in any state)."""
        out: set[int] = set()
        with self._lock:
            for lo in range(0, len(file_ids), 500):
                chunk = file_ids[lo : lo + 500]
                marks = ", ".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT id FROM files WHERE id IN ({marks})", chunk
                ).fetchall()
                out.update(r[0] for r in rows)
        return out
