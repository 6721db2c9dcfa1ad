"""The batch worker, driven for real: a catalog in a temp dir, real JPEGs, the real
decode pool and exiftool, the real `metadata` analyzer (plus analyzers of our own
where a test needs one that fails or waits)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.photos import write_jpeg
from photovault.analyze import registry
from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.registry import LoadedAnalyzers
from photovault.catalog.store import Catalog, FileRow
from photovault.media.metadata import MetadataReader
from photovault.pipeline.throttle import QuietHours, Throttle
from photovault.pipeline.worker import Worker

SHARE = "photos"
SIZE = (64, 48)


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    return root


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path / "state" / "catalog.db")
    yield cat
    cat.close()


@pytest.fixture
def exiftool() -> Iterator[MetadataReader]:
    with MetadataReader() as reader:
        yield reader


def metadata_only() -> LoadedAnalyzers:
    """The real `metadata` analyzer, loaded the way the daemon loads it."""
    loaded = registry.load(["metadata"], None, None)
    assert [a.name for a in loaded.active] == ["metadata"], loaded.disabled
    return loaded


def add(catalog: Catalog, share: Path, relpath: str, seed: int) -> Path:
    """A real photo on the share, observed (queued) in the catalog."""
    path = write_jpeg(share / relpath, seed, SIZE)
    st = path.stat()
    assert catalog.observe(SHARE, relpath, st.st_size, st.st_mtime_ns)
    return path


def row(catalog: Catalog, relpath: str) -> FileRow:
    r = catalog.get(SHARE, relpath)
    assert r is not None, relpath
    return r


def wait_for(predicate: Callable[[], Any], timeout: float = 4.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def make_worker(
    catalog: Catalog,
    share: Path,
    metadata: Any,
    analyzers: LoadedAnalyzers | None = None,
    *,
    batch_size: int = 8,
    resolve: Callable[[str, str], Path | None] | None = None,
    share_ok: Callable[[str], bool] | None = None,
) -> Worker:
    return Worker(
        catalog,
        resolve or (lambda s, rel: share / rel if s == SHARE else None),
        analyzers or metadata_only(),
        Throttle(0, QuietHours(""), 0),
        metadata,
        batch_size=batch_size,
        decode_workers=1,
        max_pixels=50_000_000,
        share_ok=share_ok,
    )


class Boom(Analyzer):
    """An analyzer that fails on every batch, as a broken model would."""

    name = "boom"
    version = "3"
    image_side = 64

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        raise RuntimeError("model file is corrupt")


class Gate(Analyzer):
    """An analyzer that holds its first batch until released."""

    name = "gate"
    version = "1"
    image_side = 64

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        self.entered.set()
        self.release.wait(10)
        return [{"seen": True} for _ in items]


def test_a_batch_of_photos_becomes_done_with_their_results(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    names = [f"trip/{i}.jpg" for i in range(3)]
    for i, name in enumerate(names):
        add(catalog, share, name, seed=i)
    worker = make_worker(catalog, share, exiftool)
    worker.start()
    try:
        wait_for(lambda: catalog.counts()[SHARE]["done"] == 3)
    finally:
        worker.stop()
    for name in names:
        r = row(catalog, name)
        assert r.state == "done" and r.last_error is None and r.sha256
        content = catalog.content(r.sha256)
        assert content is not None and content.analyzers == "metadata:2"
        facts = content.results["metadata"]
        assert (facts["width"], facts["height"]) == SIZE
        assert facts["mime"] == "image/jpeg" and len(facts["dhash"]) == 16
    assert worker.last_error is None and worker.metadata_error is None


def test_a_byte_identical_copy_reuses_results_without_a_second_analysis(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    original = add(catalog, share, "a.jpg", seed=7)
    worker = make_worker(catalog, share, exiftool)
    worker.start()
    try:
        wait_for(lambda: row(catalog, "a.jpg").state == "done")
        shutil.copyfile(original, share / "copy of a.jpg")
        st = (share / "copy of a.jpg").stat()
        catalog.observe(SHARE, "copy of a.jpg", st.st_size, st.st_mtime_ns)
        wait_for(lambda: row(catalog, "copy of a.jpg").state == "done")
    finally:
        worker.stop()
    a, copy = row(catalog, "a.jpg"), row(catalog, "copy of a.jpg")
    assert a.sha256 and copy.sha256 == a.sha256
    content = catalog.content(a.sha256)
    assert content is not None and content.analysis_runs == 1


def test_an_undecodable_file_is_quarantined_with_the_decoders_reason(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    (share / "broken.jpg").write_bytes(b"this is not a JPEG at all" * 40)
    st = (share / "broken.jpg").stat()
    catalog.observe(SHARE, "broken.jpg", st.st_size, st.st_mtime_ns)
    add(catalog, share, "good.jpg", seed=1)
    worker = make_worker(catalog, share, exiftool)
    worker.start()
    try:
        wait_for(lambda: row(catalog, "broken.jpg").state == "quarantined")
        wait_for(lambda: row(catalog, "good.jpg").state == "done")
    finally:
        worker.stop()
    broken = row(catalog, "broken.jpg")
    # Retrying cannot make garbage decode: one attempt, and the reason is kept.
    assert broken.attempts == 1
    assert broken.last_error == "not an image (looks like text)"
    assert [q.relpath for q in catalog.quarantined()] == ["broken.jpg"]
    assert worker.last_error is None  # one photo's error stays with that photo


def test_a_file_that_fails_for_a_passing_reason_is_retried_then_quarantined(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    add(catalog, share, "a.jpg", seed=1)
    # Its share is no longer configured: not permanent, so retried max_attempts times.
    worker = make_worker(catalog, share, exiftool, resolve=lambda s, rel: None)
    worker.start()
    try:
        wait_for(lambda: row(catalog, "a.jpg").state == "quarantined")
    finally:
        worker.stop()
    a = row(catalog, "a.jpg")
    assert a.attempts == catalog.max_attempts == 3
    assert a.last_error == "share no longer configured"


def test_a_file_deleted_before_processing_is_forgotten(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    add(catalog, share, "gone.jpg", seed=1).unlink()
    add(catalog, share, "kept.jpg", seed=2)
    worker = make_worker(catalog, share, exiftool)
    worker.start()
    try:
        wait_for(lambda: row(catalog, "kept.jpg").state == "done")
        wait_for(lambda: catalog.get(SHARE, "gone.jpg") is None)
    finally:
        worker.stop()
    assert catalog.quarantined() == []
    assert catalog.counts()[SHARE]["done"] == 1


def test_when_exiftool_cannot_run_the_batch_goes_back_to_the_queue_and_says_why(
    share: Path, catalog: Catalog, tmp_path: Path
) -> None:
    for i in range(2):
        add(catalog, share, f"{i}.jpg", seed=i)
    broken = MetadataReader(executable=os.fspath(tmp_path / "no-such-exiftool"))
    worker = make_worker(catalog, share, broken)
    worker.start()
    try:
        wait_for(lambda: worker.metadata_error is not None and worker.last_error is not None)
    finally:
        worker.stop()
        broken.close()
    assert "exiftool" in (worker.metadata_error or "")
    assert "exiftool" in (worker.last_error or "")
    assert catalog.counts()[SHARE]["pending"] == 2  # nothing done, nothing failed
    for i in range(2):
        r = row(catalog, f"{i}.jpg")
        assert r.attempts == 0 and r.last_error is None and r.sha256 is None


def test_an_analyzer_that_raises_leaves_photos_done_with_the_error_and_out_of_the_signature(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    for i in range(2):
        add(catalog, share, f"{i}.jpg", seed=i)
    analyzers = metadata_only()
    analyzers.active.append(Boom())
    worker = make_worker(catalog, share, exiftool, analyzers)
    worker.start()
    try:
        wait_for(lambda: catalog.counts()[SHARE]["done"] == 2)
    finally:
        worker.stop()
    for i in range(2):
        r = row(catalog, f"{i}.jpg")
        assert r.state == "done"
        assert r.last_error and "boom" in r.last_error and "model file is corrupt" in r.last_error
        assert r.sha256
        content = catalog.content(r.sha256)
        assert content is not None
        # Stored as made without `boom`, so a copy or the next start runs it again.
        assert content.analyzers == "metadata:2"
        assert "error" in content.results["boom"]
        assert "dhash" in content.results["metadata"]


def test_stop_requeues_the_work_still_in_flight(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    for i in range(3):
        add(catalog, share, f"{i}.jpg", seed=i)
    gate = Gate()
    analyzers = metadata_only()
    analyzers.active.append(gate)
    worker = make_worker(catalog, share, exiftool, analyzers, batch_size=1)
    worker.start()
    stopper = threading.Thread(target=worker.stop, kwargs={"drain_seconds": 0.0})
    try:
        assert gate.entered.wait(4)  # batch 1 is being analyzed, batch 2 is claimed
        wait_for(lambda: catalog.counts()[SHARE]["processing"] == 2)
        stopper.start()
        wait_for(worker.stopping.is_set)
    finally:
        gate.release.set()
        if stopper.ident is None:
            worker.stop()
        else:
            stopper.join(6)
    assert not worker.alive()
    states = [row(catalog, f"{i}.jpg").state for i in range(3)]
    assert states == ["done", "pending", "pending"]  # none left `processing`


def test_a_file_whose_share_is_offline_is_requeued_not_forgotten_or_failed(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    add(catalog, share, "a.jpg", seed=1)
    asked: list[str] = []

    def share_ok(name: str) -> bool:  # the share root is probed, as the daemon does
        asked.append(name)
        return share.is_dir()

    shutil.rmtree(share)  # the disk went away after the file was queued
    worker = make_worker(catalog, share, exiftool, share_ok=share_ok)
    worker.start()
    try:
        # Tried, put back in the queue and tried again (or, wrongly, dropped).
        wait_for(lambda: len(asked) >= 2 or catalog.get(SHARE, "a.jpg") is None)
    finally:
        worker.stop()
    a = row(catalog, "a.jpg")
    assert a.state == "pending" and a.attempts == 0 and a.last_error is None
    assert set(asked) == {SHARE}


def test_the_loop_survives_a_catalog_error_reports_it_and_resumes(
    share: Path, catalog: Catalog, exiftool: MetadataReader
) -> None:
    add(catalog, share, "a.jpg", seed=1)
    # Another connection makes every write to `files` fail, as a full disk would.
    other = sqlite3.connect(catalog.path, isolation_level=None)
    other.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON files"
        " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    worker = make_worker(catalog, share, exiftool)
    worker.start()
    try:
        wait_for(lambda: worker.last_error is not None)
        assert "database or disk is full" in (worker.last_error or "")
        assert worker.alive()
        other.execute("DROP TRIGGER refuse")
        wait_for(lambda: row(catalog, "a.jpg").state == "done")
        wait_for(lambda: worker.last_error is None)
        assert worker.alive()
    finally:
        worker.stop()
        other.close()
