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
    assert len(report.new_people) == 1 and report.unassigned == 2
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
    assert store.counts() == {"faces": 2, "waiting": 2, "unassigned": 0, "people": 0}


# -- full passes: caught up, converged, honouring what people did ---------------------


def along(start: np.ndarray, end: np.ndarray, t: float, jitter: float = 0.005) -> dict:
    """A face at fraction t of the way from one embedding to another."""
    vector = start + (end - start) * t + RNG.normal(scale=jitter, size=128)
    return {"box": [0.1, 0.1, 0.2, 0.2], "score": 1.0, "embedding": vector.tolist()}


def bridge_ends() -> tuple[np.ndarray, np.ndarray]:
    start = RNG.normal(size=128) * 0.1
    direction = RNG.normal(size=128)
    return start, start + direction / np.linalg.norm(direction) * 1.2  # 1.2 apart: > eps


def test_new_faces_are_waiting_and_make_a_pass_pending_until_one_finishes(tmp_path):
    store = open_store(tmp_path)
    assert not store.pending()
    fill(store, "ann", 3)
    assert store.pending() and store.counts()["waiting"] == 3
    store.cluster()
    assert not store.pending() and store.counts()["waiting"] == 0
    store.add_photo_faces("ann-0", store_faces := [face("ann")])  # re-analysed: new embedding
    assert store.pending() and store.counts()["waiting"] == 1
    store.cluster()
    store.add_photo_faces("ann-0", store_faces)  # the same faces again change nothing
    assert not store.pending()


def test_a_pending_pass_survives_a_restart(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    store.close()
    store = open_store(tmp_path)
    assert store.pending() and store.counts()["waiting"] == 3
    assert len(store.cluster().new_people) == 1 and not store.pending()


def test_other_clustering_settings_make_a_pass_pending(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    store.cluster()
    store.close()
    assert open_store(tmp_path, cluster_distance=0.4).pending()


def test_a_pass_merges_unnamed_people_that_new_faces_bridge_keeping_the_larger_id(tmp_path):
    store = open_store(tmp_path)
    start, end = bridge_ends()
    for i in range(4):
        store.add_photo_faces(f"a{i}", [along(start, end, 0.0)])
    for i in range(3):
        store.add_photo_faces(f"b{i}", [along(start, end, 1.0)])
    a, b = store.cluster().new_people
    for i, t in enumerate((0.25, 0.5, 0.75)):  # each within 0.3 of the next
        store.add_photo_faces(f"c{i}", [along(start, end, t)])
    report = store.cluster()
    assert report.merged == [b] and report.new_people == []
    assert store.people() == [{"id": a, "name": None, "faces": 10, "photos": 10}]


def test_a_pass_splits_nothing_it_does_not_have_to_and_moves_no_named_face(tmp_path):
    store = open_store(tmp_path)
    start, end = bridge_ends()
    for i in range(4):
        store.add_photo_faces(f"a{i}", [along(start, end, 0.0)])
    (a,) = store.cluster().new_people
    store.name(a, "Ann")
    for i in range(3):
        store.add_photo_faces(f"b{i}", [along(start, end, 1.0)])
    (b,) = store.cluster().new_people
    store.name(b, "Bea")
    for i, t in enumerate((0.25, 0.5, 0.75)):
        store.add_photo_faces(f"c{i}", [along(start, end, t)])
    store.cluster()
    names = {p["name"]: p["faces"] for p in store.people()}
    assert set(names) == {"Ann", "Bea"} and sum(names.values()) == 10
    (suggestion,) = store.suggestions()
    assert {suggestion["a"], suggestion["b"]} == {a, b} and suggestion["distance"] <= 0.5


def test_unnamed_faces_in_a_named_persons_cluster_join_that_person(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    (ann,) = store.cluster().new_people
    store.name(ann, "Ann")
    far = RNG.normal(size=128) * 0.1
    unnamed = [store.add_photo_faces(f"u{i}", [along(far, far, 0)])[0] for i in range(3)]
    store.cluster()
    assert store.person_of(unnamed[0]) not in (None, ann)
    # Faces arrive that put the unnamed person within reach of Ann: one cluster now.
    ann_centre = CENTRES["ann"]
    for i, t in enumerate(np.linspace(0.2, 0.8, 5)):
        store.add_photo_faces(f"bridge{i}", [along(ann_centre, far, float(t))])
    report = store.cluster()
    assert {store.person_of(f) for f in unnamed} == {ann}
    assert report.named_photos >= {"u0", "u1", "u2"}
    assert [p["name"] for p in store.people()] == ["Ann"]


def test_a_face_rejected_from_a_person_stays_out_after_that_person_is_merged_away(tmp_path):
    store = open_store(tmp_path)
    start, end = bridge_ends()
    a_ids = [store.add_photo_faces(f"a{i}", [along(start, end, 0.0)])[0] for i in range(4)]
    b_ids = [store.add_photo_faces(f"b{i}", [along(start, end, 1.0)])[0] for i in range(4)]
    a, b = store.cluster().new_people
    store.reject(b_ids[0], b)
    for i, t in enumerate((0.25, 0.5, 0.75)):
        store.add_photo_faces(f"c{i}", [along(start, end, t)])
    store.cluster()
    assert store.person_of(a_ids[0]) == store.person_of(b_ids[1]) == a
    assert store.person_of(b_ids[0]) is None
    store.cluster()
    assert store.person_of(b_ids[0]) is None


def test_faces_a_user_merged_stay_together_through_later_passes(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 3)
    a, b = store.cluster().new_people
    store.merge(a, b)
    fill(store, "bob", 2, start=10)
    store.cluster()
    assert store.people() == [{"id": a, "name": None, "faces": 8, "photos": 8}]


def test_a_pass_is_thrown_away_when_a_person_acts_during_it_and_the_next_one_writes(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 3)
    first, _ = store.cluster().new_people
    fill(store, "cy", 3)
    report = store.cluster(pace=lambda _: store.name(first, "Ann"))
    assert report.stale and store.pending() and store.counts()["waiting"] == 3
    report = store.cluster()
    assert not report.stale and not store.pending() and len(report.new_people) == 1


def test_faces_added_while_a_pass_computes_wait_for_the_next_pass(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    added = []

    def arrive(_fraction: float) -> None:
        if not added:
            added.extend(store.add_photo_faces("bob-late", [face("bob")]))

    store.cluster(pace=arrive)
    assert store.person_of(added[0]) is None
    assert store.pending() and store.counts()["waiting"] == 1


def test_deleting_every_photo_of_a_person_removes_the_person_named_or_not(tmp_path):
    store = open_store(tmp_path)
    fill(store, "ann", 3)
    fill(store, "bob", 3)
    a, b = store.cluster().new_people
    store.name(a, "Ann")
    assert store.remove_photos(["ann-0", "ann-1"]) == 2
    assert {p["id"]: p["faces"] for p in store.people()} == {a: 1, b: 3}
    store.remove_photos(["ann-2", "bob-0", "bob-1", "bob-2"])
    assert store.people() == [] and store.counts()["people"] == 0
    with pytest.raises(PeopleError, match="no person"):
        store.faces_of(a)


def test_a_named_person_without_faces_is_not_listed(tmp_path):
    store = open_store(tmp_path)
    store.create_person("Ada")
    assert store.people() == []


def test_a_version_1_database_is_migrated_with_its_waiting_faces_pending(tmp_path):
    import sqlite3 as sq

    from photovault.people.schema import MIGRATIONS

    conn = sq.connect(tmp_path / "people.sqlite3")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.executescript(MIGRATIONS[1])
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO people (name, created_at) VALUES (NULL, 0)")
    for i in range(4):
        vector = np.asarray(face("ann")["embedding"], dtype=np.float32).tobytes()
        conn.execute(
            "INSERT INTO faces (photo, idx, model, box, score, embedding, person_id) "
            "VALUES (?, 0, 'Dlib', '[0, 0, 1, 1]', 1, ?, ?)",
            (f"p{i}", vector, 1 if i < 3 else None),
        )
    conn.commit()
    conn.close()
    store = open_store(tmp_path)
    assert store.pending() and store.counts()["waiting"] == 1
    store.cluster()
    assert store.people() == [{"id": 1, "name": None, "faces": 4, "photos": 4}]
