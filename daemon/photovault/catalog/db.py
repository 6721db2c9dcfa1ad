"""SQLite connection and schema versioning for the catalog.

The catalog is the daemon's memory: which files exist, what state each is in,
and the results computed for each distinct content hash. It must survive
`kill -9` (WAL, every state change in a transaction) and refuse a database
written by a newer vaultd rather than corrupt it (rclip's `ensure_version`).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from photovault.versioning import StoreTooNewError, ensure_sqlite_version

log = logging.getLogger(__name__)

#: Bump with a new entry in MIGRATIONS; never edit an existing one.
SCHEMA_VERSION = 4

# Statements are split on ";": keep semicolons out of comments.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE files (
        id          INTEGER PRIMARY KEY,
        share       TEXT    NOT NULL,
        relpath     BLOB    NOT NULL,   -- os.fsencode(): names need not be UTF-8
        size        INTEGER NOT NULL,
        mtime_ns    INTEGER NOT NULL,
        state       TEXT    NOT NULL CHECK (state IN
                    ('pending', 'processing', 'done', 'failed', 'quarantined')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        sha256      TEXT,
        queue_seq   INTEGER NOT NULL DEFAULT 0,
        updated_at  REAL    NOT NULL,
        UNIQUE (share, relpath)
    );
    CREATE INDEX files_queue ON files (state, queue_seq);
    CREATE INDEX files_sha ON files (sha256);

    -- One row per distinct content: copies and moves share it, so they never
    -- cost a second inference.
    CREATE TABLE content (
        sha256        TEXT PRIMARY KEY,
        analyzers     TEXT NOT NULL,      -- "name:version,..." the results were made with
        taken_at      TEXT,
        gps_lat       REAL,
        gps_lon       REAL,
        camera        TEXT,
        lens          TEXT,
        width         INTEGER,
        height        INTEGER,
        orientation   INTEGER,
        mime          TEXT,
        metadata_json TEXT NOT NULL DEFAULT '{}',
        results_json  TEXT NOT NULL DEFAULT '{}',
        analysis_runs INTEGER NOT NULL DEFAULT 0,  -- how often inference ran for it
        analyzed_at   REAL NOT NULL
    );

    CREATE TABLE scans (
        share       TEXT PRIMARY KEY,
        finished_at REAL NOT NULL,
        files_seen  INTEGER NOT NULL
    );
    """,
    2: """
    -- What we last did to each photo's sidecar. A done file with no row here
    -- still needs its sidecar written (the sidecar stage's queue).
    CREATE TABLE sidecars (
        file_id     INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
        state       TEXT NOT NULL,    -- written, unchanged, skipped, failed, empty
        path        BLOB,
        mtime_ns    INTEGER,          -- fingerprint of our last write: the watcher
        size        INTEGER,          -- uses it to ignore its own change
        sha256      TEXT,
        warning     TEXT,
        imported    TEXT,             -- JSON: keywords and face names read back
        updated_at  REAL NOT NULL
    );
    CREATE INDEX sidecars_path ON sidecars (path);
    """,
    3: """
    -- 1 from the moment a file is committed done until the search index has
    -- durably written its row: what a kill -9 lost from the index's write
    -- buffer is found again at the next start. Existing rows are checked by
    -- the start-up comparison of catalog and index instead.
    ALTER TABLE files ADD COLUMN index_dirty INTEGER NOT NULL DEFAULT 0;
    -- Few rows are marked at a time: a partial index finds them without a scan.
    CREATE INDEX files_index_dirty ON files (id) WHERE index_dirty = 1
    """,
    4: """
    -- Keywords of ours a person removed from a photo's sidecar ("A|B"): never
    -- written to that photo again. Apart from the sidecars table, which
    -- sidecars rewrite empties, so that the decision outlives a rewrite.
    CREATE TABLE sidecar_rejected (
        file_id     INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        keyword     TEXT    NOT NULL,
        rejected_at REAL    NOT NULL,
        PRIMARY KEY (file_id, keyword)
    );
    -- Failed sidecars are counted for vaultctl status every few seconds.
    CREATE INDEX sidecars_state ON sidecars (state)
    """,
}


class CatalogVersionError(StoreTooNewError):
    """The database was written by a newer vaultd."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the catalog at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across process crashes in WAL mode; only a power loss
    # may roll back the last transactions, which the reconcile scan recovers.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    ensure_version(conn, path)
    return conn


def ensure_version(conn: sqlite3.Connection, path: Path) -> None:
    """Migrate forward to SCHEMA_VERSION; refuse a newer schema."""
    ensure_sqlite_version(conn, path, "catalog", SCHEMA_VERSION, MIGRATIONS, CatalogVersionError)
