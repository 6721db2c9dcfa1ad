"""A `kill -9` in the middle of a clustering pass: the next start finishes the work.

A real process runs a pass over the labelled real faces and is killed with
SIGKILL while it computes (its pace hook, which vaultd uses to leave the CPU
to ingest, holds it there); the store, reopened as after a restart, knows a
pass is pending, and one pass gives the people the uninterrupted pass gives.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from helpers.labelled_faces import MIN_PRECISION, MIN_RECALL, identity, labels
from photovault.people.cluster import pair_agreement, pair_scores
from photovault.people.store import PeopleStore

from ..conftest import needs_dlib

CHILD = """
import sys, time
from pathlib import Path
from photovault.people.store import PeopleStore

store = PeopleStore(Path(sys.argv[1]))

def pace(fraction):
    print("computing", flush=True)
    time.sleep(60)

store.cluster(pace=pace)
print("finished", flush=True)
"""


def people(store: PeopleStore, faces) -> tuple[list[str], list[int]]:
    known = labels()
    truth, predicted = [], []
    for name, _ in faces:
        for f in store.photo_faces(name):
            truth.append(identity(name, f["box"], known))
            predicted.append(-1 if f["person_id"] is None else f["person_id"])
    return truth, predicted


def seeded(path: Path, faces) -> PeopleStore:
    store = PeopleStore(path)
    for name, found in faces:
        store.add_photo_faces(name, found)
    return store


@needs_dlib
def test_a_pass_killed_while_it_computes_is_finished_by_the_next_start(labelled_faces, tmp_path):
    reference = seeded(tmp_path / "reference.sqlite3", labelled_faces)
    reference.cluster()
    # Half the photos were clustered before; the rest arrived, then the pass was killed.
    path = tmp_path / "people.sqlite3"
    half = len(labelled_faces) // 2
    store = seeded(path, labelled_faces[:half])
    store.cluster()
    for name, found in labelled_faces[half:]:
        store.add_photo_faces(name, found)
    before = store.counts()
    store.close()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "computing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    store = PeopleStore(path)
    assert store.pending() and store.counts() == before
    store.cluster()
    assert not store.pending() and store.counts()["waiting"] == 0
    truth, predicted = people(store, labelled_faces)
    precision, recall = pair_scores(truth, predicted)
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL, (precision, recall)
    assert pair_agreement(predicted, people(reference, labelled_faces)[1]) == 1.0
