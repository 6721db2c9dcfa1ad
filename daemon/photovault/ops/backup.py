"""Back up the daemon's state directory while it runs, and put a backup back.

What a backup holds (each a consistent copy, taken in this order):

1. `catalog.sqlite3` and `people.sqlite3` through SQLite's online backup API in
   one step: the copy is a single read transaction, so it is the database at
   one point in time even while the daemon writes (WAL readers never block
   writers, and a one-step backup is never restarted by them). The copies are
   switched to rollback-journal mode, so each is one self-contained file.
2. The LanceDB index folder, after `flush()` (the daemon writes its buffered
   rows) and inside `hold()` when given (the daemon keeps index writes and
   compaction out while we copy). Lance data files are immutable; a table
   version is a manifest in `_versions/` naming the files it uses. We copy the
   manifests first and the data files after, so every manifest we copied
   names files that already existed when we listed them; a version committed
   mid-copy is simply not in the backup. We then open every copied table to
   prove it. Only compaction deleting files mid-copy could break that, which
   `hold()` rules out; without it we retry the copy once.
3. `sidecars/` (the mirror tree for read-only shares) and `tags.toml`.
4. Model manifests (which models were installed, so they can be reinstalled);
   the ONNX files and face weights only with `include_models=True`, since they
   are large and can be downloaded again.

The catalog is copied before the index on purpose: the index can then only be
*ahead* of the catalog, and files the catalog still has as pending get
re-analysed and their index rows rewritten after a restore. The other way
round, the catalog could call files done whose index rows are missing.

Layout: `dest/<UTC timestamp>/` with a `backup.json` describing what and when.
It is built in a hidden `dest/.<timestamp>.*.partial` folder and renamed into
place, so a snapshot folder that exists is complete.

Restore is ops/restore.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import photovault
from photovault.catalog import db as catalog_db
from photovault.config import StateLayout
from photovault.index import schema as index_schema
from photovault.people import store as people_store
from photovault.sidecar.naming import is_temp_name

log = logging.getLogger(__name__)

BACKUP_FORMAT = 1
BACKUP_FILE = "backup.json"

CATALOG_DB = StateLayout.CATALOG
PEOPLE_DB = StateLayout.PEOPLE
INDEX_DIR = StateLayout.INDEX
SIDECARS_DIR = StateLayout.SIDECARS
MODELS_DIR = StateLayout.MODELS
FACE_WEIGHTS_DIR = StateLayout.FACE_WEIGHTS
TAGS_FILE = StateLayout.TAGS

#: Each database, with the schema version this photovault writes.
DATABASES: dict[str, int] = {
    CATALOG_DB: catalog_db.SCHEMA_VERSION,
    PEOPLE_DB: people_store.SCHEMA_VERSION,
}
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
# Lance metadata, copied before the data files it names.
_LANCE_META_DIRS = ("_versions", "_refs")
# A pointer to the newest manifest; copied without its manifest it would point
# past the end of the copy, and Lance finds the newest version without it.
_LANCE_HINT = "latest_version_hint.json"
ASIDE_PREFIX = ".before-restore-"


class BackupError(Exception):
    """The backup could not be made; nothing was left in `dest`."""


@dataclass
class BackupReport:
    path: Path
    created_at: datetime
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    index_rows: dict[str, int] | None = None
    models: list[str] = field(default_factory=list)
    models_included: bool = False
    sidecars: int = 0
    not_backed_up: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "created_at": self.created_at.isoformat(),
            "databases": self.databases,
            "index_rows": self.index_rows,
            "models": self.models,
            "models_included": self.models_included,
            "sidecars": self.sidecars,
            "not_backed_up": self.not_backed_up,
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def socket_is_live(path: Path, timeout_s: float = 1.0) -> bool:
    """True when something accepts connections on the Unix socket `path`.

    A leftover socket file from a crashed daemon refuses connections, so it
    reads as not running. When we may not connect (permissions) we cannot
    tell, and answer True: refusing a restore is the safe mistake.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except PermissionError:
            return True
        except OSError as exc:
            log.info("cannot tell whether %s is live (%s); assuming it is", path, exc)
            return True
        return True


# -- backup --------------------------------------------------------------------


def backup(
    state_dir: Path,
    dest: Path,
    *,
    flush: Callable[[], object] | None = None,
    hold: Callable[[], AbstractContextManager[object]] | None = None,
    include_models: bool = False,
    now: Callable[[], datetime] = _utcnow,
) -> BackupReport:
    """Snapshot `state_dir` into a new `dest/<UTC timestamp>/` folder; safe while the daemon runs.

    `flush` is called just before the index is copied (the daemon passes its
    index's flush, so buffered rows are in the backup). `hold`, when given,
    returns a context manager held around flush and index copy that keeps
    index writes and compaction out (the daemon passes its index write lock).
    """
    state_dir = Path(state_dir)
    dest = Path(dest)
    if not (state_dir / CATALOG_DB).is_file():
        raise BackupError(f"{state_dir}: no {CATALOG_DB} here; is this the daemon's state_dir?")
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest}: the backup destination is a file, not a folder")
    state_real, dest_real = state_dir.resolve(), dest.resolve()
    if dest_real == state_real or state_real in dest_real.parents:
        raise BackupError(f"{dest}: the backup destination lies inside the state dir {state_dir}")
    dest.mkdir(parents=True, exist_ok=True)

    started = now()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    tmp = Path(tempfile.mkdtemp(prefix=f".{stamp}.", suffix=".partial", dir=dest))
    report = BackupReport(path=tmp, created_at=started, models_included=include_models)
    try:
        for name in DATABASES:
            if (state_dir / name).is_file():
                report.databases[name] = _backup_sqlite(state_dir / name, tmp / name)
        if (state_dir / INDEX_DIR).is_dir():
            with hold() if hold is not None else contextlib.nullcontext():
                if flush is not None:
                    flush()
                report.index_rows = _backup_index(state_dir / INDEX_DIR, tmp / INDEX_DIR)
        if (state_dir / SIDECARS_DIR).is_dir():
            report.sidecars = _copy_tree(state_dir / SIDECARS_DIR, tmp / SIDECARS_DIR)
        if (state_dir / TAGS_FILE).is_file():
            _copy_file(state_dir / TAGS_FILE, tmp / TAGS_FILE)
        report.models = _backup_models(state_dir / MODELS_DIR, tmp / MODELS_DIR, include_models)
        if include_models and (state_dir / FACE_WEIGHTS_DIR).is_dir():
            _copy_tree(state_dir / FACE_WEIGHTS_DIR, tmp / FACE_WEIGHTS_DIR)
        report.not_backed_up = _not_backed_up(state_dir, include_models)

        meta = _describe(report, state_dir, finished=now())
        _write_json(tmp / BACKUP_FILE, meta)
        os.sync()  # every copied file on disk before the rename publishes the snapshot
        final = _free_name(dest, stamp)
        os.rename(tmp, final)
        _fsync_dir(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.path = final
    log.info("backup of %s written to %s", state_dir, final)
    return report


def _free_name(dest: Path, stamp: str) -> Path:
    # rename() would silently replace an empty folder of the same name.
    for n in range(1000):
        candidate = dest / (stamp if n == 0 else f"{stamp}-{n}")
        if not os.path.lexists(candidate):
            return candidate
    raise BackupError(f"{dest}: too many backups named {stamp}")


def _sqlite_ro(path: Path) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=30)


def _schema_version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: int(conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]) for n in names}


def _backup_sqlite(src: Path, dst: Path) -> dict[str, Any]:
    """One-step online backup of `src` into a new self-contained file `dst`."""
    try:
        source = _sqlite_ro(src)
    except sqlite3.Error as exc:
        raise BackupError(f"{src}: cannot open for backup: {exc}") from exc
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # pages=-1: all pages in one read transaction
            target.execute("PRAGMA journal_mode=DELETE")
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{src}: the copy fails SQLite's check: {check}")
            info = {"schema_version": _schema_version(target), "rows": _row_counts(target)}
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{src}: backup failed: {exc}") from exc
    finally:
        source.close()
    log.debug("backed up %s: %s", src, info)
    return info


def _copy_file(src: Path, dst: Path) -> bool:
    """Copy one file; False when it vanished meanwhile (a replaced temp or old version)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(src, dst)
    except FileNotFoundError:
        if src.exists():
            raise
        log.debug("backup: %s vanished while copying", src)
        return False
    return True


def _walk_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def _copy_tree(src: Path, dst: Path, *, keep: Callable[[Path], bool] | None = None) -> int:
    """Copy a folder file by file, skipping writers' temp files; returns files copied."""
    dst.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in _walk_files(src):
        if is_temp_name(path.name) or (keep is not None and not keep(path)):
            continue
        count += _copy_file(path, dst / path.relative_to(src))
    return count


def _copy_lance_table(src: Path, dst: Path) -> None:
    """Manifests first, data after: see the module docstring."""
    dst.mkdir(parents=True, exist_ok=True)
    entries = sorted(src.iterdir())
    for entry in entries:
        if entry.is_file():
            _copy_file(entry, dst / entry.name)
        elif entry.name in _LANCE_META_DIRS:
            _copy_tree(entry, dst / entry.name, keep=lambda p: p.name != _LANCE_HINT)
    for entry in entries:
        if entry.is_dir() and entry.name not in _LANCE_META_DIRS:
            _copy_tree(entry, dst / entry.name)


def _open_index(index_dir: Path) -> dict[str, int]:
    """Open every table of a LanceDB folder; returns row counts, raises if one is broken."""
    import lancedb  # heavy import, only needed here

    db = lancedb.connect(str(index_dir))
    rows: dict[str, int] = {}
    for table_dir in sorted(index_dir.glob("*.lance")):
        name = table_dir.name.removesuffix(".lance")
        rows[name] = int(db.open_table(name).count_rows())
    return rows


def _backup_index(src: Path, dst: Path) -> dict[str, int]:
    last: Exception | None = None
    for attempt in (1, 2):
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for entry in sorted(src.iterdir()):
            if entry.is_dir() and entry.name.endswith(".lance"):
                _copy_lance_table(entry, dst / entry.name)
            elif entry.is_dir():
                _copy_tree(entry, dst / entry.name)
            elif entry.is_file():
                _copy_file(entry, dst / entry.name)
        try:
            return _open_index(dst)
        except Exception as exc:  # lance raises plain OSError/RuntimeError/ValueError
            last = exc
            log.warning("backup: the index copy does not open (attempt %d): %s", attempt, exc)
    raise BackupError(f"{src}: the copied index does not open: {last}")


def _backup_models(src: Path, dst: Path, include_files: bool) -> list[str]:
    """Copy each installed model's manifest (and its files when asked); returns model names."""
    names: list[str] = []
    if not src.is_dir():
        return names
    for model_dir in sorted(src.iterdir()):
        manifest = model_dir / "manifest.json"
        # Hidden folders are installs in progress (models/store.py stages them).
        if model_dir.name.startswith(".") or not manifest.is_file():
            continue
        if include_files:
            _copy_tree(model_dir, dst / model_dir.name)
        else:
            _copy_file(manifest, dst / model_dir.name / "manifest.json")
        names.append(model_dir.name)
    return names


def _not_backed_up(state_dir: Path, include_models: bool) -> list[str]:
    known = {*DATABASES, INDEX_DIR, SIDECARS_DIR, TAGS_FILE, MODELS_DIR}
    if include_models:
        known.add(FACE_WEIGHTS_DIR)
    out = []
    for entry in sorted(state_dir.iterdir()):
        name = entry.name
        if name in known or name.startswith(ASIDE_PREFIX):
            continue
        if any(name == db + side for db in DATABASES for side in _SQLITE_SIDE_FILES):
            continue
        out.append(name)
    return out


def _describe(report: BackupReport, state_dir: Path, finished: datetime) -> dict[str, Any]:
    index_meta = None
    if report.index_rows is not None:
        with contextlib.suppress(index_schema.IndexSchemaError):
            index_meta = index_schema.read_meta(report.path / INDEX_DIR)
    return {
        "format": BACKUP_FORMAT,
        "photovault_version": photovault.__version__,
        "created_at": report.created_at.isoformat(),
        "finished_at": finished.isoformat(),
        "host": socket.gethostname(),
        "state_dir": str(state_dir),
        "schema_versions": {
            "catalog": report.databases.get(CATALOG_DB, {}).get("schema_version"),
            "people": report.databases.get(PEOPLE_DB, {}).get("schema_version"),
            "index": index_meta.get("schema_version") if index_meta else None,
        },
        "databases": report.databases,
        "index": None if report.index_rows is None else {"rows": report.index_rows},
        "models": {"included": report.models_included, "names": report.models},
        "sidecars": report.sidecars,
        "not_backed_up": report.not_backed_up,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
