"""Videos in the index: one row per file plus a row per sampled frame, and
searches that find the moment (the best frame's time)."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from photovault.index import Filters, PhotoRecord, record_from_photo

from .conftest import DIM, photo, unit


def axis(i: int, lean: float = 0.0) -> np.ndarray:
    """A unit vector along axis i, leaning a little towards the last axis."""
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    v[DIM - 1] = lean
    return unit(v)


def video(i: int, frames: list[tuple[float, np.ndarray]], **kw: Any) -> PhotoRecord:
    """A video of id i with these frames; its clip vector the normalised mean."""
    kw.setdefault("path", f"clips/VID_{i:04d}.mp4")
    mean = unit(np.mean([v for _, v in frames], axis=0)) if frames else None
    return photo(i, kind="video", duration=30.0, frames=frames, vector=mean, **kw)


THREE = [(1.5, axis(0)), (5.0, axis(1)), (9.5, axis(2))]


def test_a_query_near_one_frame_finds_the_video_at_that_frames_time(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(1, THREE),
            photo(2, vector=axis(1, lean=0.3)),  # near frame 2, less so than the frame
            photo(3, vector=axis(3)),
        ]
    )
    idx.flush()

    found = idx.search(axis(1, lean=0.05), None, None, 3)

    assert [h.id for h in found] == [1, 2, 3]
    assert (found[0].kind, found[0].at) == ("video", 5.0)
    assert found[0].score == pytest.approx(float(axis(1) @ axis(1, lean=0.05)), abs=0.02)
    assert (found[1].kind, found[1].at) == ("photo", None)


def test_a_photo_closer_than_every_frame_ranks_above_the_video(make_index):
    idx = make_index()
    idx.upsert([video(1, THREE), photo(2, vector=axis(2, lean=0.01))])
    idx.flush()

    found = idx.search(axis(2, lean=0.01), None, None, 2)

    assert [h.id for h in found] == [2, 1]
    assert found[1].at == 9.5


def test_filters_exclude_a_video_as_they_exclude_a_photo(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(1, THREE, taken_at="2020-01-01T10:00:00", camera="Pixel 8"),
            photo(2, vector=axis(0, lean=0.5), taken_at="2024-01-01T10:00:00", camera="Canon"),
        ]
    )
    idx.flush()
    q = axis(1)

    assert [h.id for h in idx.search(q, None, Filters(after=date(2023, 1, 1)), 5)] == [2]
    assert [h.id for h in idx.search(q, None, Filters(camera="canon"), 5)] == [2]
    assert [h.id for h in idx.search(q, None, Filters(camera="pixel"), 5)] == [1]
    not_clips = Filters(allowed=lambda p: "/clips/" not in p)
    assert [h.id for h in idx.search(q, None, not_clips, 5)] == [2]
    assert [h.id for h in idx.search(q, None, Filters(kind="photo"), 5)] == [2]
    assert [h.id for h in idx.search(q, None, Filters(kind="video"), 5)] == [1]


def test_writing_a_video_twice_keeps_one_set_of_frames(make_index):
    idx = make_index()
    idx.upsert([video(1, THREE)])
    idx.flush()
    assert idx.search(axis(2), None, None, 1)[0].at == 9.5  # the frames are in memory now
    idx.upsert([video(1, THREE[:2])])
    idx.flush()

    assert idx.frames.count_rows() == 2
    assert idx.search(axis(2), None, None, 1)[0].at in (1.5, 5.0)


def test_deleting_a_video_deletes_its_frames(make_index):
    idx = make_index()
    idx.upsert([video(1, THREE), video(2, THREE)])
    idx.flush()
    assert len(idx.search(axis(1), None, None, 5)) == 2  # the frames are in memory now

    idx.delete("main", "clips/VID_0001.mp4")

    assert sorted(set(idx.frames.search().limit(None).to_arrow()["id"].to_pylist())) == [2]
    assert [h.id for h in idx.search(axis(1), None, None, 5)] == [2]


def test_a_moved_video_keeps_its_frames(make_index):
    idx = make_index()
    idx.upsert([video(1, THREE)])
    idx.flush()

    idx.move("main", "clips", "holiday")

    (hit,) = idx.search(axis(2), None, None, 1)
    assert (hit.path, hit.at) == ("holiday/VID_0001.mp4", 9.5)
    assert idx.frames.count_rows() == 3


def test_the_video_half_of_a_live_photo_has_no_row(make_index):
    idx = make_index()
    idx.upsert([video(1, THREE), photo(2, vector=axis(4))])
    idx.flush()
    written: list[int] = []
    idx.on_written = written.extend

    idx.upsert([video(1, THREE, live_photo_of="IMG_0002.HEIC"), video(3, THREE[:1])])
    idx.upsert([PhotoRecord(4, "main", "misc/IMG_0004.MOV", live_photo_of="IMG_0004.HEIC")])
    idx.flush()

    assert idx.get(1) is None and idx.get(4) is None
    assert sorted(set(idx.frames.search().limit(None).to_arrow()["id"].to_pylist())) == [3]
    assert sorted(written) == [1, 3, 4]  # handled: the catalog stops listing them


def test_a_text_search_points_a_video_at_the_time_of_the_tag_it_matched(make_index):
    idx = make_index()
    tags = [
        {"tag": "Animals|Dog", "confidence": 0.9, "source": "tagger", "at": 12.5},
        {"tag": "Beach", "confidence": 0.8, "source": "tags", "at": 3.0},
    ]
    idx.upsert([video(1, THREE, tags=tags), photo(2, tags=[{"tag": "Dog", "confidence": 0.5}])])
    idx.flush()

    by_id = {h.id: h for h in idx.search(None, "dog", None, 5)}
    beach = idx.search(None, "beach", None, 5)

    assert (by_id[1].at, by_id[2].at) == (12.5, None)
    assert [(h.id, h.at) for h in beach] == [(1, 3.0)]


def test_a_tag_filter_points_a_video_at_the_time_of_that_tag(make_index):
    idx = make_index()
    tags = [
        {"tag": "Animals|Cat", "confidence": 0.9, "source": "tagger", "at": 2.5},
        {"tag": "Food|Drink", "confidence": 0.95, "source": "tagger", "at": 6.0},
    ]
    idx.upsert([video(1, [], tags=tags)])
    idx.flush()

    assert [h.at for h in idx.search(None, None, Filters(tags=["cat"]), 5)] == [2.5]
    assert [h.at for h in idx.search(None, None, Filters(tags=["Food|Drink"]), 5)] == [6.0]
    assert [h.at for h in idx.search(None, None, Filters(kind="video"), 5)] == [None]


def test_a_video_record_takes_its_kind_duration_and_frames_from_the_results():
    results = {
        "metadata": {"kind": "video", "duration": 42.0, "camera": "Pixel 8"},
        "clip": {
            "embedding": axis(0).tolist(),
            "frames": [{"at": 0.5, "embedding": axis(0).tolist()}, {"at": 4.0, "embedding": []}],
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

    assert (rec.kind, rec.duration, rec.live_photo_of) == ("video", 42.0, None)
    assert [at for at, _ in rec.frames or []] == [0.5]


def test_similar_from_a_photo_finds_a_video_frame_with_its_time(make_index):
    idx = make_index()
    idx.upsert([photo(1, vector=axis(2, lean=0.1)), video(2, THREE), photo(3, vector=axis(5))])
    idx.flush()

    found = idx.similar(1, 2)

    assert [(h.id, h.at) for h in found] == [(2, 9.5), (3, None)]


def test_similar_from_a_video_at_a_time_uses_the_frame_nearest_that_time(make_index):
    idx = make_index()
    idx.upsert(
        [
            video(1, THREE),
            photo(2, vector=axis(0, lean=0.1)),
            photo(3, vector=axis(1, lean=0.1)),
            photo(4, vector=axis(2, lean=0.1)),
        ]
    )
    idx.flush()

    assert idx.similar(1, 1, at=5.2)[0].id == 3
    assert idx.similar(1, 1, at=0.0)[0].id == 2
    assert {h.id for h in idx.similar(1, 3)} == {2, 3, 4}  # the clip: all alike
    with pytest.raises(ValueError, match="videos"):
        idx.similar(2, 1, at=1.0)


def test_similar_filters_video_moments_as_it_filters_photos(make_index):
    idx = make_index()
    idx.upsert([photo(1, vector=axis(2, lean=0.1)), video(2, THREE), photo(3, vector=axis(5))])
    idx.flush()

    assert [h.id for h in idx.similar(1, 5, Filters(kind="photo"))] == [3]
    assert [h.id for h in idx.similar(1, 5, Filters(allowed=lambda p: "clips" not in p))] == [3]


def test_the_kind_filter_from_the_wire_is_photo_or_video():
    assert Filters.from_dict({"kind": "video"}).kind == "video"
    with pytest.raises(ValueError, match="kind"):
        Filters.from_dict({"kind": "clip"})
