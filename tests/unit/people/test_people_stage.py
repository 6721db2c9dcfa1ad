"""The people stage with a real catalog and store: when passes run, what status says,
and deleted photos' faces leaving (synthetic embeddings; no models needed)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from photovault.catalog.store import Catalog
from photovault.people.stage import PRUNE_DELAY, PeopleStage
from photovault.people.store import PeopleStore
from photovault.pipeline.worker import Photo

RNG = np.random.default_rng(11)
CENTRES = {name: RNG.normal(size=128) * 0.1 for name in ("ann", "bob")}


def face(person: str) -> dict:
    vector = CENTRES[person] + RNG.normal(scale=0.01, size=128)
    return {"box": [0.1, 0.1, 0.2, 0.2], "score": 1.0, "embedding": vector.tolist()}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path):
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    store = PeopleStore(tmp_path / "people.sqlite3")
    clock = Clock()
    stage = PeopleStage(store, catalog, queue_depth=catalog.queue_depth, clock=clock)
    catalog.listeners.append(stage)  # as vaultd does
    yield catalog, store, stage, clock
    store.close()
    catalog.close()


def ingest(catalog: Catalog, stage: PeopleStage, rel: str, sha: str, faces: list, *, commit=True):
    """What the worker does for one photo: claim, the sinks, then the catalog's commit."""
    catalog.observe("s", rel, 1, 1)
    (row,) = [r for r in catalog.claim(100) if r.relpath == rel]
    results = {"faces": {"faces": faces}}
    stage.store([Photo(row, Path("/x") / rel, sha, {}, results, None)])
    if commit:
        catalog.store_content(sha, "faces:2", {}, results, [(row.id, 1, 1)])
    return row


def test_the_first_step_after_a_start_runs_a_pass_when_faces_wait(parts):
    _, store, stage, _ = parts
    for i in range(3):
        store.add_photo_faces(f"ann{i}", [face("ann")])
    assert stage.status()["clustering"] == "pending"
    report = stage.step()
    assert report is not None and len(report.new_people) == 1
    assert stage.status() | {"last_pass_seconds": 0} == {
        "faces": 3,
        "waiting": 0,
        "unassigned": 0,
        "people": 1,
        "clustering": "idle",
        "last_pass_seconds": 0,
    }


def test_a_pass_runs_as_soon_as_the_queue_drains(parts):
    catalog, _, stage, _ = parts
    ingest(catalog, stage, "bob.jpg", "sha-bob", [face("bob")])
    assert stage.step() is not None  # the start
    for i in range(3):
        ingest(catalog, stage, f"ann{i}.jpg", f"sha-ann{i}", [face("ann")])
    catalog.observe("s", "still-queued.jpg", 1, 1)
    assert stage.step() is None  # busy, and a pass ran only a moment ago
    assert stage.status()["clustering"] == "pending" and stage.status()["waiting"] == 3
    catalog.forget("s", "still-queued.jpg")
    stage.prune()
    report = stage.step()
    assert report is not None and len(report.new_people) == 1
    assert stage.status()["clustering"] == "idle"


def test_during_a_long_bulk_load_passes_keep_up_spaced_by_their_cost(parts):
    catalog, store, stage, clock = parts
    store.add_photo_faces("bob", [face("bob")])
    assert stage.step() is not None  # the start
    catalog.observe("s", "queued.jpg", 1, 1)
    for i in range(3):
        store.add_photo_faces(f"ann{i}", [face("ann")])
    assert stage.step() is None
    clock.now += stage.cluster_every + 0.1
    assert stage.step() is not None
    assert stage.people.people()[0]["faces"] == 3


def test_a_consistency_pass_runs_on_schedule_even_when_nothing_changed(parts):
    _, _, stage, clock = parts
    stage.step()
    assert stage.step() is None
    clock.now += stage.consistency_every + 1
    assert stage.step() is not None


def test_status_says_running_while_a_pass_computes(parts):
    catalog, store, _, clock = parts
    seen: list[str] = []

    def queue_depth() -> int:
        seen.append(stage.status()["clustering"])
        clock.now += 1.0  # the stage asks again after a second
        return 0

    stage = PeopleStage(store, catalog, queue_depth=queue_depth, clock=clock)
    for i in range(3):
        store.add_photo_faces(f"ann{i}", [face("ann")])
    stage.step()
    assert "running" in seen and stage.status()["clustering"] == "idle"


def test_a_deleted_photos_faces_leave_and_a_person_without_faces_disappears(parts):
    catalog, store, stage, clock = parts
    for i in range(3):
        ingest(catalog, stage, f"ann{i}.jpg", f"sha-ann{i}", [face("ann")])
    stage.step()
    assert len(store.people()) == 1
    for i in range(3):
        catalog.forget("s", f"ann{i}.jpg")
    assert stage.status()["clustering"] == "pending"
    clock.now += PRUNE_DELAY
    stage.step()
    assert store.counts()["faces"] == 0 and store.people() == []
    assert stage.status()["clustering"] == "idle"


def test_a_deleted_file_whose_content_another_file_shows_keeps_its_faces(parts):
    catalog, store, stage, clock = parts
    row = ingest(catalog, stage, "ann.jpg", "sha-ann", [face("ann")])
    catalog.observe("s", "copy-of-ann.jpg", 1, 1)
    (copy,) = catalog.claim(10)
    catalog.store_content("sha-ann", "faces:2", {}, {}, [(copy.id, 1, 1)])
    catalog.forget("s", row.relpath)
    clock.now += PRUNE_DELAY
    stage.step()
    assert store.counts()["faces"] == 1


def test_faces_stored_before_the_catalog_commits_are_not_taken_for_deleted(parts):
    catalog, store, stage, _ = parts
    ingest(catalog, stage, "old.jpg", "sha-same", [face("ann")])
    catalog.forget("s", "old.jpg")
    stage.prune()
    assert store.counts()["faces"] == 0
    # The same content comes back as a new file: faces stored, commit not yet made.
    ingest(catalog, stage, "new.jpg", "sha-same", [face("ann")], commit=False)
    stage.prune()
    assert store.counts()["faces"] == 1
    # A photo analysed before a crash, never committed: the worker will store it again.
    store.add_photo_faces("sha-uncommitted", [face("bob")])
    stage.prune()
    assert store.counts()["faces"] == 2


def test_a_failing_step_leaves_the_thread_alive_with_its_error(parts):
    catalog, store, stage, _ = parts
    store.add_photo_faces("sha-ann", [face("ann")])
    catalog.close()  # every catalog call fails now
    stage.start()
    try:
        done = threading.Event()
        for _ in range(100):
            if stage.last_error:
                done.set()
                break
            done.wait(0.05)
        assert stage.last_error and stage._thread is not None and stage._thread.is_alive()
    finally:
        stage._stop.set()
        stage._wake.set()
        stage._thread.join(5)
