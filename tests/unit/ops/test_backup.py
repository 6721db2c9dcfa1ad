"""backup / restore: a consistent snapshot of a live state dir, and a careful way back."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lancedb
import pytest

from photovault.catalog import db as catalog_db
from photovault.catalog.store import Catalog, decode_rel
from photovault.index import schema as index_schema
from photovault.ops.backup import BackupError, backup, socket_is_live
from photovault.ops.restore import RestoreError, read_backup, restore
from photovault.people import store as people_store
from photovault.people.store import PeopleStore

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def at(moment: datetime = T0) -> Any:
    return lambda: moment


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0]} for i in range(start, start + n)]


@dataclass
class State:
    dir: Path
    catalog: Catalog
    people: PeopleStore
    table: Any

    def close(self) -> None:
        self.catalog.close()
        self.people.close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    """A state dir as a running daemon leaves it: open WAL databases, a LanceDB index
    with several versions, a sidecar mirror, model manifests and the tag vocabulary."""
    root = tmp_path / "state"
    catalog = Catalog(root / "catalog.sqlite3")
    for i in range(50):
        catalog.observe("main", f"{i:06d}.jpg", 1, 1)
    people = PeopleStore(root / "people.sqlite3")
    people.create_person("Ada")
    people.create_person("Grace")
    db = lancedb.connect(str(root / "index"))
    table = db.create_table("photos", rows(10))
    table.add(rows(10, start=10))
    index_schema.write_meta(root / "index", {"schema_version": 1, "vector_dim": 4, "face_dim": 4})
    mirror = root / "sidecars" / "nas" / "2024"
    mirror.mkdir(parents=True)
    (mirror / "IMG_1.jpg.xmp").write_text("<x:xmpmeta/>")
    (mirror / ".IMG_2.jpg.xmp.pvtmp-0a1b2c.xmp").write_text("half written")
    model = root / "models" / "clip-vit-b32"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text('{"format": 1}')
    (model / "visual.onnx").write_bytes(b"\0" * 1024)
    (root / "tags.toml").write_text('[tags]\nbeach = ["a beach"]\n')
    (root / "notes.txt").write_text("mine")
    s = State(root, catalog, people, table)
    yield s
    s.close()


def catalog_paths(db_path: Path) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return sorted(decode_rel(r[0]) for r in conn.execute("SELECT relpath FROM files"))
    finally:
        conn.close()


def test_backup_during_writes_restores_a_point_in_time_catalog_and_a_whole_index(
    state: State, tmp_path: Path
) -> None:
    stop = threading.Event()
    catalog_started = threading.Event()
    written = {"catalog": 50, "index_batches": 0}

    def write_catalog() -> None:
        while not stop.is_set():
            state.catalog.observe("main", f"{written['catalog']:06d}.jpg", 1, 1)
            written["catalog"] += 1
            catalog_started.set()

    def write_index() -> None:
        while not stop.is_set():
            state.table.add(rows(10, start=1000 + 10 * written["index_batches"]))
            written["index_batches"] += 1

    flushes: list[int] = []

    def flush() -> None:
        # Called mid-backup (databases copied, index not yet): make sure both
        # writers really move while the backup runs.
        flushes.append(written["catalog"])
        catalog_mark, index_mark = written["catalog"], written["index_batches"]
        for _ in range(500):
            if written["catalog"] > catalog_mark + 5 and written["index_batches"] > index_mark:
                return
            stop.wait(0.01)

    writers = [threading.Thread(target=write_catalog), threading.Thread(target=write_index)]
    for t in writers:
        t.start()
    try:
        assert catalog_started.wait(10)
        before = written["catalog"]
        report = backup(state.dir, tmp_path / "backups", flush=flush)
        after = written["catalog"]
    finally:
        stop.set()
        for t in writers:
            t.join()
    state.close()

    fresh = tmp_path / "fresh"
    restore(report.path, fresh, daemon_running=False)

    paths = catalog_paths(fresh / "catalog.sqlite3")
    n = len(paths)
    assert before <= n <= flushes[0] + 1 <= after  # +1: a commit not yet counted
    assert paths == [f"{i:06d}.jpg" for i in range(n)]  # a prefix: one moment in time
    assert report.databases["catalog.sqlite3"]["rows"]["files"] == n
    restored = Catalog(fresh / "catalog.sqlite3")  # opens, version check passes
    restored.close()
    people = PeopleStore(fresh / "people.sqlite3")
    try:
        names = {r[0] for r in people._conn.execute("SELECT name FROM people")}
    finally:
        people.close()
    assert names == {"Ada", "Grace"}
    count = lancedb.connect(str(fresh / "index")).open_table("photos").count_rows()
    assert count >= 20 and count % 10 == 0
    assert report.index_rows == {"photos": count}
    assert len(flushes) == 1


def test_backup_is_one_described_folder_named_by_its_time(state: State, tmp_path: Path) -> None:
    dest = tmp_path / "backups"

    report = backup(state.dir, dest, now=at())

    assert [p.name for p in dest.iterdir()] == ["20250102T030405Z"]
    assert report.path == dest / "20250102T030405Z"
    meta = read_backup(report.path)
    assert meta["format"] == 1
    assert meta["created_at"] == "2025-01-02T03:04:05+00:00"
    assert meta["photovault_version"]
    assert meta["schema_versions"] == {
        "catalog": catalog_db.SCHEMA_VERSION,
        "people": people_store.SCHEMA_VERSION,
        "index": 1,
    }
    assert meta["models"] == {"included": False, "names": ["clip-vit-b32"]}
    assert meta["not_backed_up"] == ["notes.txt"]
    snap = report.path
    assert (snap / "models" / "clip-vit-b32" / "manifest.json").is_file()
    assert not (snap / "models" / "clip-vit-b32" / "visual.onnx").exists()
    assert sorted(p.name for p in (snap / "sidecars").rglob("*") if p.is_file()) == [
        "IMG_1.jpg.xmp"
    ]
    assert (snap / "tags.toml").is_file()
    assert not any(p.name.endswith(("-wal", "-shm")) for p in snap.iterdir())


def test_backup_with_models_copies_the_onnx_files(state: State, tmp_path: Path) -> None:
    report = backup(state.dir, tmp_path / "backups", include_models=True)

    assert (report.path / "models" / "clip-vit-b32" / "visual.onnx").stat().st_size == 1024
    assert read_backup(report.path)["models"]["included"] is True


def test_two_backups_in_the_same_second_get_two_folders(state: State, tmp_path: Path) -> None:
    first = backup(state.dir, tmp_path / "b", now=at())
    second = backup(state.dir, tmp_path / "b", now=at())

    assert (first.path.name, second.path.name) == ("20250102T030405Z", "20250102T030405Z-1")


def test_a_failed_backup_leaves_nothing_in_dest(state: State, tmp_path: Path) -> None:
    def broken_flush() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        backup(state.dir, tmp_path / "b", flush=broken_flush)

    assert list((tmp_path / "b").iterdir()) == []


def test_backup_refuses_a_dest_inside_the_state_dir_or_a_folder_without_catalog(
    state: State, tmp_path: Path
) -> None:
    with pytest.raises(BackupError, match="inside the state dir"):
        backup(state.dir, state.dir / "backups")
    with pytest.raises(BackupError, match=r"no catalog\.sqlite3"):
        backup(tmp_path, tmp_path / "b")


def test_restore_refuses_while_the_daemon_runs_and_touches_nothing(
    state: State, tmp_path: Path
) -> None:
    report = backup(state.dir, tmp_path / "b")
    before = sorted(p.name for p in state.dir.iterdir())

    with pytest.raises(RestoreError, match="vaultd is running"):
        restore(report.path, state.dir, daemon_running=True)

    assert sorted(p.name for p in state.dir.iterdir()) == before


def test_restore_moves_the_current_state_aside_instead_of_deleting_it(
    state: State, tmp_path: Path
) -> None:
    report = backup(state.dir, tmp_path / "b")
    for i in range(50, 60):  # work done after the backup
        state.catalog.observe("main", f"{i:06d}.jpg", 1, 1)
    (state.dir / "sidecars" / "new.xmp").write_text("after")
    # Stop "the daemon" abruptly: its -wal file stays behind.
    wal = (state.dir / "catalog.sqlite3-wal").read_bytes()
    state.close()
    (state.dir / "catalog.sqlite3-wal").write_bytes(wal)

    result = restore(report.path, state.dir, daemon_running=False, now=at())

    aside = state.dir / ".before-restore-20250102T030405Z"
    assert result.aside == aside
    assert len(catalog_paths(state.dir / "catalog.sqlite3")) == 50
    assert not (state.dir / "catalog.sqlite3-wal").exists()
    assert (aside / "catalog.sqlite3-wal").read_bytes() == wal
    assert len(catalog_paths(aside / "catalog.sqlite3")) == 60
    assert (aside / "sidecars" / "new.xmp").read_text() == "after"
    assert not (state.dir / "sidecars" / "new.xmp").exists()
    # Model files were not in the backup: the installed ones stay where they are.
    assert (state.dir / "models" / "clip-vit-b32" / "visual.onnx").is_file()
    assert result.models_restored is False and result.warnings
    assert (state.dir / "notes.txt").read_text() == "mine"


def test_restore_refuses_a_backup_from_a_newer_schema_unless_forced(
    state: State, tmp_path: Path
) -> None:
    report = backup(state.dir, tmp_path / "b")
    conn = sqlite3.connect(report.path / "catalog.sqlite3")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    state.close()

    with pytest.raises(RestoreError, match=r"newer photovault.*schema version 99"):
        restore(report.path, state.dir, daemon_running=False)
    assert not list(state.dir.glob(".before-restore-*"))

    forced = restore(report.path, state.dir, daemon_running=False, force=True)
    assert any("99" in w for w in forced.warnings)


def test_restore_from_the_backup_root_names_the_snapshots_to_pick(
    state: State, tmp_path: Path
) -> None:
    backup(state.dir, tmp_path / "b", now=at())

    with pytest.raises(RestoreError, match="20250102T030405Z"):
        restore(tmp_path / "b", tmp_path / "fresh", daemon_running=False)


def test_socket_is_live_tells_a_listening_daemon_from_a_stale_socket_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v.sock"
    assert socket_is_live(path) is False
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    try:
        assert socket_is_live(path) is True
    finally:
        server.close()
    assert path.exists()  # what a killed daemon leaves behind
    assert socket_is_live(path) is False


def test_backup_json_is_valid_json_written_last(state: State, tmp_path: Path) -> None:
    report = backup(state.dir, tmp_path / "b")
    text = (report.path / "backup.json").read_text()
    assert json.loads(text)["finished_at"] >= json.loads(text)["created_at"]


def test_a_restore_that_fails_midway_puts_the_previous_state_back(
    state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = backup(state.dir, tmp_path / "b")
    for i in range(50, 55):
        state.catalog.observe("main", f"{i:06d}.jpg", 1, 1)
    state.close()
    before = sorted(p.name for p in state.dir.iterdir())
    real_rename = os.rename

    failures = [OSError("I/O error")]

    def rename(src: Any, dst: Any) -> None:  # placing the restored index fails, once
        if Path(dst) == state.dir / "index" and failures:
            raise failures.pop()
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="I/O error"):
        restore(report.path, state.dir, daemon_running=False)

    assert sorted(p.name for p in state.dir.iterdir()) == before
    assert len(catalog_paths(state.dir / "catalog.sqlite3")) == 55
