"""Search: ranking by vector and by text, and every filter applied before the limit."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from photovault.index import Filters
from photovault.index.filters import to_sql

from .conftest import DIM, photo, unit


def ids(hits) -> list[int]:
    return [h.id for h in hits]


def test_vector_search_returns_the_nearest_photo_first(make_index):
    idx = make_index()
    rng = np.random.default_rng(0)
    vecs = [unit(rng.standard_normal(DIM)) for _ in range(40)]
    idx.upsert(photo(i, vector=v) for i, v in enumerate(vecs))
    idx.flush()
    query = unit(vecs[17] + 0.05 * rng.standard_normal(DIM))

    hits = idx.search(query, None, Filters(), 5)

    assert hits[0].id == 17
    assert hits[0].score > hits[1].score
    assert len(hits) == 5


def test_vector_search_skips_photos_without_a_clip_vector(make_index):
    idx = make_index()
    idx.upsert([photo(1, vector=unit(np.ones(DIM))), photo(2)])
    idx.flush()

    assert ids(idx.search(unit(np.ones(DIM)), None, Filters(), 10)) == [1]


def test_buffered_rows_are_searchable_after_flush_and_not_before(make_index):
    idx = make_index(flush_rows=100)
    idx.upsert([photo(1, tags=[{"tag": "Animals|Dog", "confidence": 0.9}])])

    assert idx.pending() == 1
    assert idx.search(None, None, Filters(), 10) == []
    idx.flush()
    assert ids(idx.search(None, None, Filters(), 10)) == [1]


def test_date_filter_keeps_after_inclusive_and_before_exclusive_in_wall_clock_time(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, taken_at="2023-04-30T23:59:00+02:00"),
            photo(2, taken_at="2023-05-01T00:00:00-07:00"),
            photo(3, taken_at="2023:05:31 12:00:00"),
            photo(4, taken_at="2023-06-01T00:00:00Z"),
            photo(5),
        ]
    )
    idx.flush()

    got = idx.search(None, None, Filters(after=date(2023, 5, 1), before=date(2023, 6, 1)), 10)

    assert sorted(ids(got)) == [2, 3]
    later = idx.search(None, None, Filters(after=datetime(2023, 5, 31, 12, 0)), 10)
    assert ids(later) == [4, 3]  # newest first when no ranking is asked for


def test_near_filter_uses_great_circle_distance_not_the_bounding_box(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, lat=48.8566, lon=2.3522),  # Paris
            photo(2, lat=48.8566 + 0.08, lon=2.3522),  # ~8.9 km north
            photo(3, lat=48.8566 + 0.06, lon=2.3522 + 0.09),  # in the 10-km box corner, ~9.2 km
            photo(4, lat=48.8566 + 0.08, lon=2.3522 + 0.12),  # box corner, ~12.2 km: outside
            photo(5),  # no GPS
        ]
    )
    idx.flush()

    got = idx.search(None, None, Filters(near=(48.8566, 2.3522, 10.0)), 10)

    assert sorted(ids(got)) == [1, 2, 3]


def test_near_filter_holds_for_vector_and_keyword_searches(make_index):
    # Ranked searches fetch the coordinates only when a check needs them.
    idx = make_index()
    v = unit(np.ones(DIM))
    idx.upsert(
        [
            photo(1, lat=48.8566, lon=2.3522, vector=v, tags=[{"tag": "Eiffel"}]),
            photo(2, lat=48.8566 + 0.06, lon=2.3522 + 0.09, vector=v, tags=[{"tag": "Eiffel"}]),
            photo(3, lat=48.8566 + 0.08, lon=2.3522 + 0.12, vector=v, tags=[{"tag": "Eiffel"}]),
        ]
    )
    idx.flush()
    near = Filters(near=(48.8566, 2.3522, 10.0))

    assert sorted(ids(idx.search(v, None, near, 10))) == [1, 2]
    assert sorted(ids(idx.search(None, "eiffel", near, 10))) == [1, 2]


def test_near_filter_works_across_the_dateline(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, lat=0.0, lon=179.95),
            photo(2, lat=0.0, lon=-179.95),
            photo(3, lat=0.0, lon=178.0),
        ]
    )
    idx.flush()

    assert sorted(ids(idx.search(None, None, Filters(near=(0.0, 180.0, 20.0)), 10))) == [1, 2]


def test_camera_filter_matches_a_case_insensitive_substring(make_index):
    idx = make_index()
    idx.upsert([photo(1, camera="Canon EOS R5"), photo(2, camera="Apple iPhone 12"), photo(3)])
    idx.flush()

    assert ids(idx.search(None, None, Filters(camera="eos"), 10)) == [1]


def test_camera_filter_sees_cameras_written_after_the_first_camera_search(make_index):
    # The camera filter is answered from the set of camera names in the index
    # (an IN list a bitmap index serves); a camera first written after that set
    # was read must still be found, also with a vector.
    idx = make_index()
    idx.upsert([photo(1, camera="Canon EOS R5", vector=unit(np.ones(DIM)))])
    idx.flush()
    assert ids(idx.search(None, None, Filters(camera="nikon"), 10)) == []

    idx.upsert([photo(2, camera="NIKON Z 6_2", vector=unit(np.ones(DIM)))])
    idx.flush()

    assert ids(idx.search(None, None, Filters(camera="nikon"), 10)) == [2]
    assert ids(idx.search(unit(np.ones(DIM)), None, Filters(camera="Z 6"), 10)) == [2]
    assert sorted(ids(idx.search(None, None, Filters(camera="o"), 10))) == [1, 2]


def test_camera_filter_sql_is_an_in_list_of_the_matching_known_names():
    f = Filters(camera="eos")
    assert to_sql(f) == "strpos(lower(camera), 'eos') > 0"
    assert to_sql(f, {"Canon EOS R5", "Canon EOS 5D", "Apple iPhone 12"}) == (
        "camera IN ('Canon EOS 5D', 'Canon EOS R5')"
    )
    assert to_sql(f, {"Apple iPhone 12"}) == "false"
    assert to_sql(Filters(camera="o'b"), {"Fo'bar"}) == "camera IN ('Fo''bar')"


def test_path_glob_matches_relative_or_absolute_paths(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, path="2023/Beach Trip/IMG_1.jpg"),
            photo(2, path="2023/Beach Trip/IMG_2.CR2"),
            photo(3, path="2022/home/IMG_3.jpg"),
            photo(4, path="a+b (1)/[x].jpg"),
        ]
    )
    idx.flush()

    assert sorted(ids(idx.search(None, None, Filters(path="2023/*.jpg"), 10))) == [1]
    assert sorted(ids(idx.search(None, None, Filters(path="*.jpg"), 10))) == [1, 3, 4]
    assert ids(idx.search(None, None, Filters(path="/srv/photos/2022/*"), 10)) == [3]
    assert ids(idx.search(None, None, Filters(path="a+b (?)/[[]x].jpg"), 10)) == [4]
    assert ids(idx.search(None, None, Filters(path="20?3/Beach*/IMG_[!1].*"), 10)) == [2]


def test_tag_filter_matches_leaf_or_path_case_insensitively_and_needs_every_tag(make_index):
    idx = make_index()
    dog = {"tag": "Animals|Dog", "confidence": 0.8, "source": "tagger"}
    beach = {"tag": "Places|Beach", "confidence": 0.6, "source": "tagger"}
    idx.upsert([photo(1, tags=[dog]), photo(2, tags=[dog, beach]), photo(3, tags=[beach])])
    idx.flush()

    assert sorted(ids(idx.search(None, None, Filters(tags=["DOG"]), 10))) == [1, 2]
    assert sorted(ids(idx.search(None, None, Filters(tags=["animals|dog"]), 10))) == [1, 2]
    assert sorted(ids(idx.search(None, None, Filters(tags=["Animals"]), 10))) == [1, 2]
    assert ids(idx.search(None, None, Filters(tags=["dog", "beach"]), 10)) == [2]
    assert ids(idx.search(None, None, Filters(tags=["do"]), 10)) == []


def test_person_filter_needs_every_named_person(make_index):
    idx = make_index()
    idx.upsert(
        [photo(1, people=["Alice"]), photo(2, people=["Alice", "Bob"]), photo(3, people=["Bob"])]
    )
    idx.flush()

    assert sorted(ids(idx.search(None, None, Filters(persons=["alice"]), 10))) == [1, 2]
    assert ids(idx.search(None, None, Filters(persons=["Alice", "bob"]), 10)) == [2]


def test_permission_filter_applies_before_the_limit(make_index):
    idx = make_index()
    rng = np.random.default_rng(3)
    base = unit(rng.standard_normal(DIM))
    # The 100 nearest photos are private; only photos 100.. are readable.
    idx.upsert(
        photo(
            i,
            path=("private" if i < 100 else "public") + f"/{i}.jpg",
            vector=unit(base + (0.01 if i < 100 else 1.0) * rng.standard_normal(DIM)),
        )
        for i in range(130)
    )
    idx.flush()
    readable = lambda p: "/public/" in p  # noqa: E731

    hits = idx.search(base, None, Filters(allowed=readable), 10)

    assert len(hits) == 10
    assert all(h.id >= 100 for h in hits)
    assert len(idx.search(None, "public", Filters(allowed=readable), 10)) == 10
    allowed_set = {f"/srv/photos/public/{i}.jpg" for i in (120, 125)}
    assert sorted(ids(idx.search(None, None, Filters(allowed=allowed_set), 10))) == [120, 125]


def test_share_filter_is_pushed_into_the_query(make_index):
    idx = make_index()
    idx.upsert([photo(1), photo(2, share="other")])
    idx.flush()

    assert ids(idx.search(None, None, Filters(shares=["other"]), 10)) == [2]
    assert idx.search(None, None, Filters(shares=[]), 10) == []


def test_full_text_finds_a_photo_by_tag_leaf_label_and_path_words(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, tags=[{"tag": "Animals|Dog", "confidence": 0.9}]),
            photo(2, labels=[{"synset": "n02099601", "label": "golden retriever", "score": 0.7}]),
            photo(3, path="2023/Holiday_Lisbon/IMG_0042.jpg"),
            photo(4, people=["Marguerite"]),
            photo(5, tags=[{"tag": "Places|Beach", "confidence": 0.9}]),
        ]
    )
    idx.flush()

    assert ids(idx.search(None, "dog", Filters(), 10)) == [1]
    assert ids(idx.search(None, "Retriever", Filters(), 10)) == [2]
    assert ids(idx.search(None, "lisbon", Filters(), 10)) == [3]
    assert ids(idx.search(None, "marguerite", Filters(), 10)) == [4]
    assert ids(idx.search(None, "dog", Filters(tags=["beach"]), 10)) == []


def test_full_text_finds_rows_written_after_the_text_index_was_built(make_index):
    idx = make_index()
    idx.upsert([photo(1, path="old/a.jpg")])
    idx.flush()
    idx.upsert([photo(2, path="zanzibar/b.jpg")])
    idx.flush()

    assert ids(idx.search(None, "zanzibar", Filters(), 10)) == [2]


def test_hits_carry_path_share_time_tags_and_people(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(
                1,
                taken_at="2023-05-01T10:00:00+02:00",
                people=["Alice"],
                tags=[{"tag": "A|Low", "confidence": 0.2}, {"tag": "A|High", "confidence": 0.9}],
            )
        ]
    )
    idx.flush()

    (hit,) = idx.search(None, None, Filters(), 1)

    assert (hit.share, hit.path, hit.abs_path) == (
        "main",
        "misc/IMG_0001.jpg",
        "/srv/photos/misc/IMG_0001.jpg",
    )
    assert hit.taken_at == "2023-05-01T10:00:00+02:00"
    assert hit.tags == ["A|High", "A|Low"]
    assert hit.people == ["Alice"]
    assert set(hit.to_dict()) == {
        "id",
        "share",
        "path",
        "abs_path",
        "score",
        "taken_at",
        "tags",
        "people",
        "dhash_distance",
        "text_match",
        "place",
        "kind",
        "at",
    }
    assert hit.text_match is None and hit.place is None
    assert (hit.kind, hit.at) == ("photo", None)


def test_filters_from_a_protocol_object_parse_dates_and_near_and_refuse_unknown_keys():
    import pytest

    from photovault.index.filters import Near

    f = Filters.from_dict(
        {
            "persons": ["Alice"],
            "after": "2023-05-01",
            "before": "2023-06-01T12:00:00",
            "near": {"lat": 1, "lon": 2, "km": 3},
        }
    )

    assert f.persons == ("Alice",)
    assert f.after == date(2023, 5, 1)
    assert f.before == datetime(2023, 6, 1, 12, 0)
    assert f.near == Near(1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="unknown filter"):
        Filters.from_dict({"allowed": ["/etc/passwd"]})
