from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from photovault.people.store import PeopleError, PeopleStore, PeopleVersionError

RNG = np.random.default_rng(7)
CENTRES = {name: RNG.normal(size=128) * 0.1 for name in ("ann", "bob", "cy")}


def face(person: str, box: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2), jitter: float = 0.01):
    vector = CENTRES[person] + RNG.normal(scale=jitter, size=128)
    return {"box": list(box), "score": 1.0, "embedding": vector.tolist(), "model": "Dlib"}


def open_store(tmp_path: Path, **kw) -> PeopleStore:
    return PeopleStore(tmp_path / "people.sqlite3", **kw)


def fill(store: PeopleStore, person: str, count: int, start: int = 0) -> list[int]:
    return [store.add_photo_faces(f"{person}-{start + i}", [face(person)])[0] for i in range(count)]


def test_clustering_turns_three_similar_faces_into_one_unnamed_person(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 2)
    report = store.cluster()
    assert len(report.new_people) == 1 and report.waiting == 2
    assert store.people() == [{"id": report.new_people[0], "name": None, "faces": 3, "photos": 3}]


def test_person_ids_survive_a_restart_and_a_second_clustering(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 3)
    store.cluster()
    before = {p["id"]: p["faces"] for p in store.people()}
    store.close()
    store = open_store(tmp_path)
    fill(store, "ann", 2, start=10)
    report = store.cluster()
    assert report.new_people == [] and report.joined == 2
    after = {p["id"]: p["faces"] for p in store.people()}
    assert set(after) == set(before) and sorted(after.values()) == [3, 5]


def test_a_new_face_joins_the_nearest_named_person_at_once(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    (person,) = store.cluster().new_people
    store.name(person, "Ann")
    (new_face,) = store.add_photo_faces("ann-new", [face("ann")])
    assert store.person_of(new_face) == person
    (stranger,) = store.add_photo_faces("bob-new", [face("bob")])
    assert store.person_of(stranger) is None


def test_a_rejected_face_is_never_suggested_for_that_person_again(tmp_path):
    store = open_store(tmp_path)
    ids = fill(store, "ann", 4)
    (person,) = store.cluster().new_people
    store.reject(ids[0], person)
    assert store.person_of(ids[0]) is None
    store.cluster()
    assert store.person_of(ids[0]) is None
    store.name(person, "Ann")
    store.add_photo_faces("ann-0", [face("ann")])  # re-analysis keeps the face id
    assert store.person_of(ids[0]) is None
    assert [f["id"] for f in store.faces_of(person)] == ids[1:]


def test_merge_moves_faces_keeps_the_first_id_and_takes_the_only_name(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 3)
    a, b = store.cluster().new_people
    store.name(b, "Bob")
    assert store.merge(a, b) == a
    assert store.people() == [{"id": a, "name": "Bob", "faces": 6, "photos": 6}]
    with pytest.raises(PeopleError, match="no person"):
        store.faces_of(b)


def test_names_are_unique_and_rename_goes_by_name(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 3)
    a, b = store.cluster().new_people
    store.name(a, "Ann")
    with pytest.raises(PeopleError, match="merge"):
        store.name(b, "Ann")
    assert store.rename("Ann", "Annie") == a
    assert store.person_by_name("Annie") == a


def test_reanalysing_a_photo_keeps_face_ids_for_overlapping_boxes(tmp_path):
    store = open_store(tmp_path)
    first = store.add_photo_faces(
        "p", [face("ann", (0.1, 0.1, 0.2, 0.2)), face("bob", (0.6, 0.1, 0.2, 0.2))]
    )
    again = store.add_photo_faces("p", [face("bob", (0.61, 0.1, 0.2, 0.2))])
    assert again == [first[1]]
    assert store.counts()["faces"] == 1


def test_faces_of_another_model_are_ignored(tmp_path):
    store = open_store(tmp_path)
    other = {**face("ann"), "model": "ArcFace"}
    assert store.add_photo_faces("p", [other]) == []


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    open_store(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "people.sqlite3")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(PeopleVersionError, match="newer"):
        open_store(tmp_path)


def test_removing_a_photo_forgets_its_faces(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    assert store.remove_photo("ann-0") == 1
    assert store.counts() == {"faces": 2, "waiting": 2, "people": 0}
