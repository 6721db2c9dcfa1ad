"""New photos take a plain append because an in-memory set knows which ids are
stored; the set must never let a stored id be appended twice."""

from __future__ import annotations

import numpy as np

from photovault.index.presence import MAX_TRACKED_ID, PresentIds

from .conftest import photo


def test_the_set_loads_lazily_grows_and_clears():
    loads = []

    def load() -> np.ndarray:
        loads.append(1)
        return np.array([3, 5])

    ids = PresentIds(load)
    assert loads == []
    assert ids.present(np.array([3, 4, 5, 5000])).tolist() == [True, False, True, False]
    ids.mark(np.array([5000]))
    ids.clear(np.array([3, 99_999]))
    assert ids.present(np.array([3, 5, 5000])).tolist() == [False, True, True]
    assert loads == [1]


def test_ids_it_cannot_track_send_the_caller_to_the_table():
    ids = PresentIds(lambda: np.array([], dtype=np.int64))
    assert ids.present(np.array([1, -2])) is None
    assert ids.present(np.array([MAX_TRACKED_ID])) is None


def test_rewrites_deletes_and_reopening_never_duplicate_a_row(make_index):
    idx = make_index()
    idx.upsert([photo(i) for i in range(1, 6)])
    idx.flush()
    idx.upsert([photo(3, camera="again"), photo(6)])  # one update among new rows
    idx.flush()
    assert idx.count() == 6 and idx.get(3)["camera"] == "again"

    idx.delete_ids([2])
    idx.delete("main", "misc/IMG_0004.jpg")
    idx.upsert([photo(2, camera="back"), photo(4, camera="back")])
    idx.flush()
    assert idx.count() == 6
    assert idx.count("id = 2") == 1 and idx.count("id = 4") == 1
    idx.close()

    # A fresh process knows nothing yet: the set is read from the table.
    again = make_index()
    again.upsert([photo(i, camera="third") for i in range(1, 8)])
    again.flush()
    assert again.count() == 7
    assert again.count("camera = 'third'") == 7


def test_ids_outside_the_tracked_range_still_update_in_place(make_index):
    idx = make_index()
    big = MAX_TRACKED_ID + 7
    idx.upsert([photo(big, camera="one"), photo(-4, camera="one")])
    idx.flush()
    idx.upsert([photo(big, camera="two"), photo(-4, camera="two")])
    idx.flush()
    assert idx.count() == 2 and idx.count("camera = 'two'") == 2
