"""Put a backup (ops/backup.py) back into the state directory.

Restore refuses while the daemon runs (the caller says so; `vaultctl` checks
whether the daemon's socket answers with `socket_is_live`: a lock file would
survive a `kill -9` and a stale one would block restores after a crash, while
a socket that accepts connections means a live daemon). It checks the snapshot
(format, schema versions this vaultd can open, every database and table
readable) before touching anything, then moves the current state into
`state_dir/.before-restore-<timestamp>/`, never deleting anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from photovault.index import schema as index_schema
from photovault.ops.backup import (
    _SQLITE_SIDE_FILES,
    ASIDE_PREFIX,
    BACKUP_FILE,
    BACKUP_FORMAT,
    DATABASES,
    FACE_WEIGHTS_DIR,
    INDEX_DIR,
    MODELS_DIR,
    SIDECARS_DIR,
    TAGS_FILE,
    _copy_file,
    _copy_tree,
    _fsync_dir,
    _open_index,
    _schema_version,
    _sqlite_ro,
    _utcnow,
    socket_is_live,
)

log = logging.getLogger(__name__)

__all__ = ["RestoreError", "RestoreReport", "read_backup", "restore", "socket_is_live"]


class RestoreError(Exception):
    """The backup was not restored; the state directory is as it was."""


@dataclass
class RestoreReport:
    source: Path
    state_dir: Path
    restored: list[str]
    aside: Path | None
    backup_created_at: str
    models_restored: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "state_dir": str(self.state_dir),
            "restored": self.restored,
            "aside": str(self.aside) if self.aside else None,
            "backup_created_at": self.backup_created_at,
            "models_restored": self.models_restored,
            "warnings": self.warnings,
        }


def read_backup(src: Path) -> dict[str, Any]:
    """The `backup.json` of one snapshot folder, or a RestoreError that says what to pick."""
    src = Path(src)
    path = src / BACKUP_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        names = sorted(p.parent.name for p in src.glob(f"*/{BACKUP_FILE}")) if src.is_dir() else []
        hint = ""
        if names:
            hint = (
                f"; it holds the snapshots {', '.join(names)}: "
                f"pass one of them, e.g. {src / names[-1]}"
            )
        raise RestoreError(f"{src}: not a photovault backup (no {BACKUP_FILE}){hint}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RestoreError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("format"), int):
        raise RestoreError(f"{path}: not a photovault backup description")
    if meta["format"] > BACKUP_FORMAT:
        raise RestoreError(
            f"{path}: backup format {meta['format']} is newer than this photovault "
            f"understands ({BACKUP_FORMAT}); upgrade photovault to restore it"
        )
    return meta


def _check_snapshot(src: Path, force: bool) -> list[str]:
    """Refuse a damaged snapshot or one from a newer schema (unless `force`); returns warnings."""
    warnings: list[str] = []
    newer: list[str] = []
    for name, current in DATABASES.items():
        path = src / name
        if not path.is_file():
            continue
        try:
            conn = _sqlite_ro(path)
            try:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                version = _schema_version(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise RestoreError(f"{path}: not a usable SQLite database: {exc}") from exc
        if check != "ok":
            raise RestoreError(f"{path}: damaged: {check}")
        if version is not None and version > current:
            newer.append(f"{name} has schema version {version}, this photovault writes {current}")
    if (src / INDEX_DIR).is_dir():
        try:
            meta = index_schema.read_meta(src / INDEX_DIR)
        except index_schema.IndexSchemaError as exc:
            raise RestoreError(str(exc)) from exc
        version = (meta or {}).get("schema_version")
        if isinstance(version, int) and version > index_schema.SCHEMA_VERSION:
            newer.append(
                f"the index has schema version {version}, this photovault "
                f"writes {index_schema.SCHEMA_VERSION}"
            )
        try:
            _open_index(src / INDEX_DIR)
        except Exception as exc:  # lance raises plain OSError/RuntimeError/ValueError
            raise RestoreError(
                f"{src / INDEX_DIR}: the index in the backup does not open: {exc}"
            ) from exc
    if newer:
        message = f"{src} was written by a newer photovault: " + "; ".join(newer)
        if not force:
            raise RestoreError(
                message + ". Upgrade photovault first (or pass force to restore it "
                "anyway; vaultd will refuse to start until upgraded)"
            )
        warnings.append(message)
    return warnings


def _managed_names(models: bool) -> list[str]:
    """Everything in a state dir that a restore replaces (moved aside, never deleted)."""
    names = [INDEX_DIR, SIDECARS_DIR, TAGS_FILE]
    for db in DATABASES:
        names += [db, *(db + side for side in _SQLITE_SIDE_FILES)]
    if models:
        names += [MODELS_DIR, FACE_WEIGHTS_DIR]
    return names


def restore(
    src: Path,
    state_dir: Path,
    *,
    daemon_running: bool,
    force: bool = False,
    now: Callable[[], datetime] = _utcnow,
) -> RestoreReport:
    """Put the snapshot `src` in place as the state of `state_dir`.

    `daemon_running` must come from the caller (`socket_is_live` on the
    daemon's socket): restoring under a live daemon would have it keep writing
    to databases that were moved away. `force` restores a snapshot written
    by a newer photovault anyway. Everything the snapshot replaces (including
    the SQLite -wal/-shm files, which must never sit beside a different
    database) is moved to `state_dir/.before-restore-<timestamp>/`. Model files
    are replaced only when the backup included them.
    """
    src = Path(src)
    state_dir = Path(state_dir)
    if daemon_running:
        raise RestoreError(
            f"vaultd is running on {state_dir}; stop it first (systemctl stop vaultd), then restore"
        )
    meta = read_backup(src)
    warnings = _check_snapshot(src, force)
    models = bool((meta.get("models") or {}).get("included"))
    names = _managed_names(models)
    state_dir.mkdir(parents=True, exist_ok=True)
    stamp = now().strftime("%Y%m%dT%H%M%SZ")

    # 1. Copy the snapshot into a staging folder beside the state: the slow
    #    part, done while nothing has been touched yet.
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{stamp}.", suffix=".partial", dir=state_dir))
    try:
        restored = []
        for name in names:
            item = src / name
            if item.is_dir():
                _copy_tree(item, staging / name)
                restored.append(name)
            elif item.is_file():
                _copy_file(item, staging / name)
                restored.append(name)
        aside = _free_aside(state_dir, stamp)
        _swap(state_dir, staging, aside, names, restored)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not models and (meta.get("models") or {}).get("names"):
        warnings.append(
            "model files were not in this backup; the installed models were kept "
            f"(the backup listed: {', '.join(meta['models']['names'])})"
        )
    kept_aside = aside if aside.exists() else None
    log.info("restored %s into %s (previous state in %s)", src, state_dir, kept_aside)
    return RestoreReport(
        source=src,
        state_dir=state_dir,
        restored=restored,
        aside=kept_aside,
        backup_created_at=str(meta.get("created_at")),
        models_restored=models,
        warnings=warnings,
    )


def _free_aside(state_dir: Path, stamp: str) -> Path:
    for n in range(1000):
        candidate = state_dir / (ASIDE_PREFIX + stamp + ("" if n == 0 else f"-{n}"))
        if not os.path.lexists(candidate):
            return candidate
    raise RestoreError(f"{state_dir}: too many {ASIDE_PREFIX}{stamp}* folders")


def _swap(
    state_dir: Path, staging: Path, aside: Path, names: list[str], restored: list[str]
) -> None:
    """Move the current items aside and the staged ones in; undo all of it on any error."""
    moved_aside: list[str] = []
    placed: list[str] = []
    try:
        for name in names:
            if os.path.lexists(state_dir / name):
                aside.mkdir(exist_ok=True)
                os.rename(state_dir / name, aside / name)
                moved_aside.append(name)
        for name in restored:
            os.rename(staging / name, state_dir / name)
            placed.append(name)
        _fsync_dir(state_dir)
    except BaseException:
        log.error("restore into %s failed; putting the previous state back", state_dir)
        # Best effort, item by item: one failed move must not strand the others.
        moves = [(state_dir / n, staging / n) for n in reversed(placed)]
        moves += [(aside / n, state_dir / n) for n in reversed(moved_aside)]
        for src, dst in moves:
            try:
                os.rename(src, dst)
            except OSError as exc:
                log.error(
                    "could not move %s back to %s (%s); it is still at %s", dst.name, dst, exc, src
                )
        with contextlib.suppress(OSError):
            aside.rmdir()
        raise
