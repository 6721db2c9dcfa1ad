"""One migration loop and one error family for the versioned stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from photovault.catalog.db import CatalogVersionError, connect
from photovault.people.store import PeopleStore, PeopleVersionError
from photovault.versioning import StoreTooNewError, ensure_sqlite_version


def test_steps_run_in_order_once_and_record_the_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    steps = {
        1: "CREATE TABLE a (x INTEGER)",
        2: "ALTER TABLE a ADD COLUMN y INTEGER; INSERT INTO a VALUES (1, 2)",
    }
    assert ensure_sqlite_version(conn, tmp_path / "s.db", "test store", 2, steps) == 0
    assert ensure_sqlite_version(conn, tmp_path / "s.db", "test store", 2, steps) == 2
    assert conn.execute("SELECT x, y FROM a").fetchall() == [(1, 2)]


def test_a_failing_step_leaves_the_store_at_the_last_good_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    steps = {1: "CREATE TABLE a (x INTEGER)", 2: "INSERT INTO nowhere VALUES (1)"}
    with pytest.raises(sqlite3.OperationalError):
        ensure_sqlite_version(conn, tmp_path / "s.db", "test store", 2, steps)
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == ("1",)


def newer(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', '999')")
    conn.close()


def test_a_newer_catalog_or_people_store_is_refused_as_one_kind_of_error(tmp_path: Path) -> None:
    newer(tmp_path / "catalog.sqlite3")
    with pytest.raises(CatalogVersionError) as caught:
        connect(tmp_path / "catalog.sqlite3")
    assert isinstance(caught.value, StoreTooNewError) and "999" in str(caught.value)
    newer(tmp_path / "people.sqlite3")
    with pytest.raises(PeopleVersionError) as caught_people:
        PeopleStore(tmp_path / "people.sqlite3")
    assert isinstance(caught_people.value, StoreTooNewError)
