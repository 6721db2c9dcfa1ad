"""Times in videos that searches point at besides the best frame: a moved video
keeps them, a recognized line or a person filter points at when it was seen,
and a crash between the row and the frames write never leaves them disagreeing
unnoticed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from photovault.index import Filters, PhotoRecord, record_from_photo
from photovault.index.records import record_from_row

from .conftest import DIM, photo, unit

TAGS = [
    {"tag": "Animals|Dog", "confidence": 0.9, "source": "tagger", "at": 12.5},
    {"tag": "Beach", "confidence": 0.8, "source": "tags", "at": 3.0},
]


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return unit(v)


def video(i: int, **kw: Any) -> PhotoRecord:
    kw.setdefault("path", f"clips/VID_{i:04d}.mp4")
    kw.setdefault("frames", [(1.0, axis(0)), (4.0, axis(1))])
    return photo(i, kind="video", duration=30.0, vector=axis(0), **kw)


def frames_of(idx: Any, i: int) -> list[float]:
    t = idx.frames.search().where(f"id = {i}").limit(None).to_arrow()
    return sorted(t["at"].to_pylist())


# -- 1. a move keeps what is video-specific ------------------------------------------


def test_a_moved_video_keeps_the_times_of_its_tags(make_index):
    idx = make_index()
    idx.upsert([video(1, tags=TAGS)])
    idx.flush()

    idx.move("main", "clips", "holiday")

    assert [(h.path, h.at) for h in idx.search(None, "dog", None, 5)] == [
        ("holiday/VID_0001.mp4", 12.5)
    ]
    assert [h.at for h in idx.search(None, None, Filters(tags=["beach"]), 5)] == [3.0]
    row = idx.get(1)
    assert row is not None
    assert (row["kind"], row["duration"]) == ("video", 30.0)


def test_a_moved_video_keeps_the_times_of_its_lines_and_people(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(
                1,
                text="Happy birthday\nPARIS 2024",
                text_times=[
                    {"text": "Happy birthday", "at": 2.0},
                    {"text": "PARIS 2024", "at": 9.0},
                ],
                people=["Anna"],
                person_times=[{"person": "Anna", "at": 7.5}],
            )
        ]
    )
    idx.flush()

    idx.move("main", "clips", "holiday")

    assert [h.at for h in idx.search(None, "paris", None, 5)] == [9.0]
    assert [h.at for h in idx.search(None, None, Filters(persons=["anna"]), 5)] == [7.5]


def test_a_row_read_back_gives_the_record_it_was_written_from(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(
                1,
                tags=TAGS,
                text="PARIS",
                text_times=[{"text": "PARIS", "at": 9.0}],
                people=["Anna"],
                person_times=[{"person": "Anna", "at": 7.5}],
            )
        ]
    )
    idx.flush()
    row = idx.get(1)
    assert row is not None

    rec = record_from_row(row)

    assert [t.get("at") for t in rec.tags] == [12.5, 3.0]
    assert rec.text_times == [{"text": "PARIS", "at": 9.0}]
    assert rec.person_times == [{"person": "Anna", "at": 7.5}]
    assert rec.frames is None  # a move leaves the stored frames alone


# -- 2. recognized text and people point at their time ---------------------------------


def test_a_text_search_points_a_video_at_the_line_it_matched(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(
                1,
                tags=TAGS,
                text="Welcome\nPERINDUSTRIAN BALAKONG",
                text_times=[
                    {"text": "Welcome", "at": 1.0},
                    {"text": "PERINDUSTRIAN BALAKONG", "at": 21.0},
                ],
            ),
            photo(2, text="balakong"),
        ]
    )
    idx.flush()

    by_id = {h.id: h for h in idx.search(None, "balakong", None, 5)}

    assert by_id[1].text_match == "PERINDUSTRIAN BALAKONG"
    assert (by_id[1].at, by_id[2].at) == (21.0, None)
    # a tag the text matches still wins (as before), the line's time otherwise
    assert [h.at for h in idx.search(None, "beach", None, 5)] == [3.0]


def test_a_text_with_a_vector_points_a_frameless_video_at_the_matched_line(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(
                1,
                frames=[],
                text="closing time",
                text_times=[{"text": "closing time", "at": 14.0}],
            )
        ]
    )
    idx.flush()

    (hit,) = idx.search(axis(0), "closing", None, 5)

    assert hit.at == 14.0


def test_a_person_filter_points_a_video_at_when_that_person_was_seen(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(
                1,
                frames=[],
                people=["Anna", "Ben"],
                person_times=[{"person": "Anna", "at": 7.5}, {"person": "Ben", "at": 20.0}],
            ),
            photo(2, people=["Ben"]),
        ]
    )
    idx.flush()

    assert [h.at for h in idx.search(None, None, Filters(persons=["anna"]), 5)] == [7.5]
    ben = {h.id: h.at for h in idx.search(None, None, Filters(persons=[" BEN "]), 5)}
    assert ben == {1: 20.0, 2: None}
    assert [h.at for h in idx.search(None, None, Filters(kind="video"), 5)] == [None]


def test_a_video_record_takes_the_times_of_its_lines_and_faces_from_the_results():
    results = {
        "metadata": {"kind": "video", "duration": 42.0},
        "text": {
            "lines": [
                {"text": "EXIT", "box": [0, 0, 0.1, 0.1], "score": 0.9, "at": 3.5},
                {"text": "no time", "box": [0, 0, 0.1, 0.1], "score": 0.9},
            ]
        },
        "faces": {
            "faces": [
                {"box": [0, 0, 0.2, 0.2], "score": 0.7, "person": "Anna", "at": 9.0},
                {"box": [0.5, 0, 0.2, 0.2], "score": 0.95, "person": "Anna", "at": 4.0},
                {"box": [0, 0.5, 0.2, 0.2], "score": 0.9, "person": "Ben"},
                {"box": [0.5, 0.5, 0.2, 0.2], "score": 0.99, "at": 1.0},
            ]
        },
    }
    p = SimpleNamespace(
        file=SimpleNamespace(id=7, share="main", relpath="a.mp4"),
        path=None,
        sha256="ab",
        facts={},
        results=results,
    )

    rec = record_from_photo(p)

    assert rec.text_times == [{"text": "EXIT", "at": 3.5}]
    assert rec.person_times == [{"person": "Anna", "at": 4.0}]  # the best-scored face


# -- 3. the frames are written before the row ----------------------------------------


class Boom(RuntimeError):
    pass


def _fail(monkeypatch: Any, table: Any, *methods: str) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise Boom("crash")

    for m in methods:
        monkeypatch.setattr(table, m, boom)


def _agree(idx: Any, i: int, sha_new: str, new_frames: list[float]) -> None:
    """The row that says the new content has the new content's frames: a row
    that still says the old content is stale, which the consistency check
    (catalog digest vs index digest) finds and rewrites, frames and all."""
    row = idx.get(i)
    if row is not None and row["sha256"] == sha_new:
        assert frames_of(idx, i) == new_frames


def test_a_crash_in_the_frames_write_leaves_the_row_stale_not_agreeing(make_index, monkeypatch):
    idx = make_index()
    idx.upsert([video(1)])
    idx.flush()
    new = video(1, sha256="f" * 64, frames=[(2.0, axis(2)), (6.0, axis(3)), (8.0, axis(4))])

    with monkeypatch.context() as m:
        _fail(m, idx.frames, "add")
        idx.upsert([new])
        with pytest.raises(Boom):
            idx.flush()

    _agree(idx, 1, "f" * 64, [2.0, 6.0, 8.0])
    row = idx.get(1)
    assert row is not None and row["sha256"] != "f" * 64  # stale: repaired by the check
    idx.flush()  # the retry (the rows went back to the buffer)
    assert idx.get(1)["sha256"] == "f" * 64
    assert frames_of(idx, 1) == [2.0, 6.0, 8.0]


def test_a_crash_in_the_row_write_leaves_the_row_stale_and_a_retry_agrees(make_index, monkeypatch):
    idx = make_index()
    idx.upsert([video(1)])
    idx.flush()
    new = video(1, sha256="f" * 64, frames=[(2.0, axis(2)), (6.0, axis(3))])

    with monkeypatch.context() as m:
        _fail(m, idx.photos, "merge_insert", "add")
        idx.upsert([new])
        with pytest.raises(Boom):
            idx.flush()

    _agree(idx, 1, "f" * 64, [2.0, 6.0])
    idx.flush()
    assert idx.get(1)["sha256"] == "f" * 64
    assert frames_of(idx, 1) == [2.0, 6.0]
    assert [h.at for h in idx.search(axis(3), None, None, 1)] == [6.0]
