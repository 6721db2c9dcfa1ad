from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from photovault.catalog.db import SCHEMA_VERSION, CatalogVersionError
from photovault.catalog.store import Catalog


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "c.sqlite3", max_attempts=3)


def test_a_new_file_is_queued_once(cat: Catalog) -> None:
    assert cat.observe("s", "a.jpg", 10, 1)
    assert not cat.observe("s", "a.jpg", 10, 1)
    assert [r.relpath for r in cat.claim(10)] == ["a.jpg"]
    assert cat.claim(10) == []


def test_a_changed_file_is_queued_again_with_attempts_reset(cat: Catalog) -> None:
    cat.observe("s", "a.jpg", 10, 1)
    (row,) = cat.claim(1)
    assert cat.fail(row.id, "broken", permanent=True) == "quarantined"
    assert cat.observe("s", "a.jpg", 11, 2)
    row = cat.get("s", "a.jpg")
    assert row is not None and row.state == "pending" and row.attempts == 0


def test_failures_quarantine_after_max_attempts_keeping_the_reason(cat: Catalog) -> None:
    cat.observe("s", "a.jpg", 10, 1)
    states = []
    for _ in range(3):
        (row,) = cat.claim(1)
        states.append(cat.fail(row.id, "truncated JPEG"))
    assert states == ["pending", "pending", "quarantined"]
    (q,) = cat.quarantined()
    assert q.last_error == "truncated JPEG"


def test_in_flight_work_is_requeued_after_a_crash(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite3")
    cat.observe("s", "a.jpg", 10, 1)
    cat.claim(1)
    cat.close()  # as if killed: the row stays 'processing'
    again = Catalog(tmp_path / "c.sqlite3")
    assert again.recover() == 1
    assert [r.relpath for r in again.claim(5)] == ["a.jpg"]


def test_results_are_committed_with_the_done_state(cat: Catalog) -> None:
    cat.observe("s", "a.jpg", 10, 1)
    (row,) = cat.claim(1)
    cat.store_content(
        "abc",
        "metadata:1",
        {"taken_at": "2024-01-01T00:00:00", "gps": {"lat": 1.5, "lon": 2.5}},
        {"metadata": {}},
        [(row.id, 10, 1)],
    )
    got = cat.get("s", "a.jpg")
    assert got is not None and got.state == "done" and got.sha256 == "abc"
    content = cat.content("abc")
    assert content is not None and content.analysis_runs == 1
    assert content.metadata["gps"] == {"lat": 1.5, "lon": 2.5}


def test_a_moved_folder_carries_its_files_and_results(cat: Catalog) -> None:
    for name in ("trip/a.jpg", "trip/b.jpg", "tripod.jpg"):
        cat.observe("s", name, 1, 1)
    assert cat.move("s", "trip", "2024/trip") == 2
    assert set(cat.known("s")) == {"2024/trip/a.jpg", "2024/trip/b.jpg", "tripod.jpg"}


def test_forgetting_a_folder_removes_only_what_is_under_it(cat: Catalog) -> None:
    for name in ("trip/a.jpg", "tripod.jpg"):
        cat.observe("s", name, 1, 1)
    assert cat.forget("s", "trip") == 1
    assert set(cat.known("s")) == {"tripod.jpg"}


def test_non_utf8_names_round_trip(cat: Catalog) -> None:
    name = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")
    cat.observe("s", name, 1, 1)
    assert list(cat.known("s")) == [name]


def test_counts_list_every_state(cat: Catalog) -> None:
    cat.observe("s", "a.jpg", 1, 1)
    assert cat.counts()["s"] == {
        "pending": 1,
        "processing": 0,
        "done": 0,
        "failed": 0,
        "quarantined": 0,
    }


def test_a_catalog_from_a_newer_vaultd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    Catalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(CatalogVersionError, match="newer"):
        Catalog(path)
