"""Schema versions of the three stores vaultd keeps (catalog, people, index).

Each store records the version it was written with, migrates older ones
forward step by step and refuses a newer one rather than corrupt it (rclip's
`ensure_version`). The errors share one base class so vaultd can refuse any
store the same way; the two SQLite stores share the migration loop too.

A leaf module: it imports nothing of ours.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


class StoreVersionError(RuntimeError):
    """A store (catalog, people, index) at a schema version this photovault cannot use."""


class StoreTooNewError(StoreVersionError):
    """A store written by a newer photovault: upgrade, or restore a backup."""


def ensure_sqlite_version(
    conn: sqlite3.Connection,
    path: Path,
    what: str,
    current: int,
    migrations: Mapping[int, str],
    too_new: type[StoreTooNewError] = StoreTooNewError,
) -> int:
    """Migrate the SQLite store at `path` forward to `current` (each step one
    transaction, its statements split on ";") or refuse a newer one. Returns the
    version found before migrating (0 for a new database)."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row else 0
    if found > current:
        raise too_new(
            f"{path}: {what} schema version {found} is newer than this vaultd supports "
            f"({current}); upgrade photovault or restore a backup"
        )
    for version in range(found + 1, current + 1):
        log.info("migrating %s %s to schema version %d", what, path, version)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found
