"""Writes stay in step with the catalog: moves, deletes, buffering and person names."""

from __future__ import annotations

import numpy as np

from photovault.index import FaceRecord, Filters

from .conftest import photo


def paths(idx) -> list[str]:
    return sorted(h.path for h in idx.search(None, None, Filters(), 1000))


def test_upserting_the_same_file_again_replaces_its_row(make_index):
    idx = make_index()
    idx.upsert([photo(1, camera="Old")])
    idx.flush()
    idx.upsert([photo(1, camera="New")])
    idx.flush()

    assert idx.count() == 1
    assert idx.get(1)["camera"] == "New"


def test_moving_a_file_updates_its_path_and_leaves_nothing_at_the_old_one(make_index):
    idx = make_index()
    idx.upsert([photo(1, path="inbox/a.jpg", vector=np.ones(16, np.float32) / 4)])
    idx.flush()

    assert idx.move("main", "inbox/a.jpg", "2023/lisbon/a.jpg") == 1

    assert paths(idx) == ["2023/lisbon/a.jpg"]
    row = idx.get(1)
    assert row["abs_path"] == "/srv/photos/2023/lisbon/a.jpg"
    assert row["vector"] is not None
    assert [h.id for h in idx.search(None, "lisbon", Filters(), 10)] == [1]
    assert idx.search(None, "inbox", Filters(), 10) == []


def test_moving_a_folder_carries_everything_under_it_but_not_lookalike_siblings(make_index):
    idx = make_index()
    idx.upsert(
        [photo(1, path="trip/a.jpg"), photo(2, path="trip/sub/b.jpg"), photo(3, path="trip2/c.jpg")]
    )
    idx.flush()

    assert idx.move("main", "trip", "2023/trip") == 2

    assert paths(idx) == ["2023/trip/a.jpg", "2023/trip/sub/b.jpg", "trip2/c.jpg"]


def test_moving_onto_an_existing_file_replaces_it(make_index):
    idx = make_index()
    idx.upsert([photo(1, path="a.jpg"), photo(2, path="b.jpg")])
    idx.flush()

    idx.move("main", "a.jpg", "b.jpg")

    assert idx.count() == 1
    assert idx.get(1)["path"] == "b.jpg"


def test_deleting_a_folder_removes_its_files_only(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, path="trip/a.jpg"),
            photo(2, path="trip/sub/b.jpg"),
            photo(3, path="trip2/c.jpg"),
            photo(4, path="trip/a.jpg", share="other"),
        ]
    )
    idx.flush()

    assert idx.delete("main", "trip") == 2

    assert sorted((h.share, h.path) for h in idx.search(None, None, Filters(), 10)) == [
        ("main", "trip2/c.jpg"),
        ("other", "trip/a.jpg"),
    ]


def test_a_delete_after_a_queued_upsert_does_not_let_the_row_come_back(make_index):
    idx = make_index(flush_rows=100)
    idx.upsert([photo(1)])

    idx.delete("main", "misc/IMG_0001.jpg")
    idx.flush()

    assert idx.count() == 0


def test_the_buffer_flushes_when_full(make_index):
    idx = make_index(flush_rows=3)
    idx.upsert([photo(1), photo(2)])
    assert idx.count() == 0

    idx.upsert([photo(3)])

    assert idx.count() == 3
    assert idx.pending() == 0


def test_the_buffer_flushes_after_flush_seconds(tmp_path):
    from photovault.index import IndexSettings, PhotoIndex

    now = [100.0]
    idx = PhotoIndex(
        tmp_path / "index",
        IndexSettings(vector_dim=16, face_dim=4, flush_rows=100, flush_seconds=2.0),
        clock=lambda: now[0],
    )
    idx.upsert([photo(1)])
    now[0] += 1.0
    idx.tick()
    assert idx.count() == 0

    now[0] += 1.5
    idx.tick()

    assert idx.count() == 1
    idx.close()


def test_many_small_writes_are_compacted_on_schedule(make_index):
    idx = make_index(flush_rows=1, optimize_after_writes=5)
    for i in range(5):
        idx.upsert([photo(i)])
    before = idx.photos.stats()["fragment_stats"]["num_fragments"]
    assert before >= 5

    idx.tick()

    assert idx.photos.stats()["fragment_stats"]["num_fragments"] <= 2
    assert idx.count() == 5


def test_person_names_of_faces_are_searchable_by_person_and_text(make_index):
    idx = make_index()
    face = FaceRecord(
        box=(0.1, 0.2, 0.3, 0.4),
        score=0.9,
        person_id=7,
        person="Alice",
        embedding=np.ones(4, np.float32),
    )
    idx.upsert([photo(1, people=["Alice"], person_ids=[7], faces=[face]), photo(2)])
    idx.flush()

    assert [h.id for h in idx.search(None, None, Filters(persons=["alice"]), 10)] == [1]
    assert [h.id for h in idx.search(None, "alice", Filters(), 10)] == [1]
    assert idx.get(1)["person_ids"] == [7]


def test_renaming_a_person_updates_person_filters_and_text_search(make_index):
    # A rename reaches the index as rewritten rows (the daemon's reindex).
    idx = make_index()
    idx.upsert(
        [
            photo(1, people=["Bob", "Person 7"], person_ids=[7, 8]),
            photo(2, people=["Bob"], person_ids=[8]),
        ]
    )
    idx.flush()

    idx.upsert([photo(1, people=["Bob", "Marguerite"], person_ids=[7, 8])])
    idx.flush()

    hits = idx.search(None, None, Filters(persons=["marguerite", "bob"]), 10)
    assert [(h.id, h.people) for h in hits] == [(1, ["Bob", "Marguerite"])]
    assert [h.id for h in idx.search(None, "marguerite", Filters(), 10)] == [1]
    assert idx.search(None, None, Filters(persons=["person 7"]), 10) == []


def test_moving_a_folder_into_an_existing_one_keeps_the_files_already_there(make_index):
    idx = make_index()
    idx.upsert([photo(1, path="trip/a.jpg"), photo(2, path="2023/old.jpg")])
    idx.flush()

    idx.move("main", "trip", "2023")

    assert paths(idx) == ["2023/a.jpg", "2023/old.jpg"]


def test_a_file_name_that_is_not_utf8_is_found_as_it_is_and_follows_deletes(make_index):
    from photovault.index.records import storable

    name = b"trip/caf\xe9.jpg".decode("utf-8", "surrogateescape")
    idx = make_index()
    idx.upsert([photo(1, path=storable(name), abs_path=storable("/srv/photos/" + name))])
    idx.flush()
    assert paths(idx) == [name]  # more in test_index_paths.py
    assert idx.delete("main", name) == 1
    assert paths(idx) == []


def test_a_large_table_waits_for_a_share_of_its_size_before_folding_rows_in(tmp_path):
    from photovault.index import IndexSettings, PhotoIndex

    now = [0.0]
    idx = PhotoIndex(
        tmp_path / "index",
        IndexSettings(
            vector_dim=16,
            face_dim=4,
            flush_rows=10_000,
            optimize_after_rows=10,
            optimize_growth=0.5,
            optimize_idle_seconds=5.0,
        ),
        clock=lambda: now[0],
    )

    def fragments() -> int:
        return idx.photos.stats()["fragment_stats"]["num_fragments"]

    def write(ids: range) -> None:
        idx.upsert([photo(i) for i in ids])
        idx.flush()
        idx.tick()

    write(range(0, 100))
    idx.maintain()
    base = fragments()
    for lo in range(100, 140, 10):  # 40 new rows: under half of 100
        write(range(lo, lo + 10))
    assert fragments() == base + 4

    write(range(140, 150))  # 50: due
    base = fragments()
    assert base <= 2

    write(range(150, 170))  # 20 rows, under half of 150 ...
    now[0] += 4.0
    idx.tick()
    assert fragments() == base + 1
    now[0] += 1.0  # ... until writes have paused for optimize_idle_seconds
    idx.tick()
    assert fragments() <= base

    base = fragments()
    write(range(170, 175))  # fewer than optimize_after_rows wait for optimize_seconds
    now[0] += 60.0
    idx.tick()
    assert fragments() == base + 1
    assert idx.count() == 175
    idx.close()
