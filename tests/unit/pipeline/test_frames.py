"""Videos through the analyzers: frames become items, their results one result per clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem
from photovault.media.types import DecodedImage, PhotoMetadata, VideoFrame
from photovault.pipeline import frames
from photovault.results import clip_of, faces_of, photo_tags, text_of


def video_item(times: list[float], prior: dict[str, Any] | None = None) -> AnalysisItem:
    shots = [VideoFrame(t, np.full((36, 64, 3), int(t * 10) % 255, np.uint8)) for t in times]
    image = DecodedImage(shots[0].pixels, (1280, 720), 1, "video-keyframes", "video", 30.0, shots)
    return AnalysisItem(1, Path("/share/clip.mp4"), "ab" * 32, image, PhotoMetadata(), prior or {})


def photo_item() -> AnalysisItem:
    image = DecodedImage(np.zeros((48, 64, 3), np.uint8), (64, 48))
    return AnalysisItem(2, Path("/share/a.jpg"), "cd" * 32, image, PhotoMetadata())


def test_a_video_runs_metadata_once_and_every_other_analyzer_on_each_frame() -> None:
    video, photo = video_item([0.0, 2.0, 4.0]), photo_item()
    batch = frames.expand([photo, video], [["metadata", "tagger"], ["metadata", "tagger"]])
    assert batch.missing == [
        ["metadata", "tagger"],
        ["metadata"],
        ["tagger"],
        ["tagger"],
        ["tagger"],
    ]
    assert batch.items[1] is video
    assert [b.image.pixels.shape for b in batch.items[2:]] == [(36, 64, 3)] * 3
    # a frame is its own stored frame: no analyzer goes back to the file for pixels
    assert all(b.image.stored_size == (64, 36) for b in batch.items[2:])
    assert batch.spans == [(0, []), (1, [(2, 0.0), (3, 2.0), (4, 4.0)])]


def test_a_live_photo_video_half_gets_the_once_per_video_analyzers_only() -> None:
    video = video_item([0.0, 1.0])
    batch = frames.expand([video], [["metadata", "clip"]], skip_frames={0})
    assert batch.missing == [["metadata"]] and batch.spans == [(0, [])]


def test_tags_are_the_union_with_the_best_score_and_its_time() -> None:
    merged = frames.merge(
        "tagger",
        [
            (
                0.0,
                {
                    "model": "m",
                    "tags": [{"tag": "Animals|Cat", "confidence": 0.4, "source": "tagger"}],
                    "labels": [{"synset": "n1", "label": "tabby", "score": 0.4}],
                },
            ),
            (
                5.0,
                {
                    "model": "m",
                    "tags": [
                        {"tag": "Animals|Cat", "confidence": 0.9, "source": "tagger"},
                        {"tag": "Food|Coffee", "confidence": 0.2, "source": "tagger"},
                    ],
                    "labels": [{"synset": "n2", "label": "espresso", "score": 0.7}],
                },
            ),
        ],
    )
    tags = {t["tag"]: (t["confidence"], t["at"]) for t in photo_tags({"tagger": merged})}
    assert tags == {"Animals|Cat": (0.9, 5.0), "Food|Coffee": (0.2, 5.0)}
    assert [lab["label"] for lab in merged["labels"]] == ["espresso"]  # as many as one frame has
    assert merged["frames_analyzed"] == 2


def test_clip_keeps_each_frames_embedding_and_a_normalised_mean() -> None:
    merged = frames.merge(
        "clip",
        [
            (0.0, {"model": "m", "embedding": [1.0, 0.0]}),
            (3.5, {"model": "m", "embedding": [0.0, 1.0]}),
        ],
    )
    clip = clip_of({"clip": merged})
    assert clip.embedding is not None
    assert np.allclose(clip.embedding, [2**-0.5, 2**-0.5], atol=1e-5)
    assert [(f.at, f.embedding) for f in clip.frames] == [(0.0, (1.0, 0.0)), (3.5, (0.0, 1.0))]


def test_a_person_seen_in_many_frames_is_one_face_at_its_best_frame() -> None:
    def face(x: float, emb: list[float], score: float) -> dict[str, Any]:
        return {"box": [x, 0.1, 0.2, 0.3], "score": score, "embedding": emb, "model": "Dlib"}

    anna, ben = [0.0] * 127 + [1.0], [1.0] + [0.0] * 127
    near_anna = [0.0] * 127 + [0.9]  # 0.1 away: the same person
    merged = frames.merge(
        "faces",
        [
            (0.0, {"faces": [face(0.1, anna, 0.8)]}),
            (2.0, {"faces": [face(0.1, near_anna, 0.95), face(0.6, ben, 0.9)]}),
            (4.0, {"faces": []}),
        ],
    )
    got = faces_of({"faces": merged}).faces
    assert [(f.at, f.score) for f in got] == [(2.0, 0.95), (2.0, 0.9)]
    assert {t["tag"] for t in merged["tags"]} == {"People", "People|Portrait"}


def test_text_lines_are_read_once_from_their_surest_frame() -> None:
    def line(text: str, score: float) -> dict[str, Any]:
        return {"text": text, "box": [0, 0, 1, 0.1], "score": score}

    merged = frames.merge(
        "text",
        [
            (1.0, {"lines": [line("OPEN 24 HOURS", 0.7)], "document": None, "tags": []}),
            (
                3.0,
                {
                    "lines": [line("Open 24 hours!", 0.9), line("Bakery", 0.8)],
                    "document": None,
                    "tags": [],
                },
            ),
        ],
    )
    assert [(ln.text, ln.at) for ln in text_of({"text": merged}).lines] == [
        ("Open 24 hours!", 3.0),
        ("Bakery", 3.0),
    ]


def test_an_analyzer_that_failed_on_every_frame_failed_on_the_video() -> None:
    merged = frames.merge("tagger", [(0.0, {"error": "model missing"}), (1.0, None)])
    assert merged == {"error": "model missing"}
    video = video_item([0.0, 1.0])
    batch = frames.expand([video], [["tagger"]])
    for i, _at in batch.spans[0][1]:
        batch.items[i].results["tagger"] = {"error": "boom"}
    errors = frames.fold([video], batch, [None, None, None])
    assert errors == ["tagger: boom"] and video.results["tagger"] == {"error": "boom"}


def test_the_kind_and_duration_go_into_the_metadata_result_or_stand_in_for_it() -> None:
    video = video_item([0.0, 1.0])
    media = frames.video_facts(video.image)
    assert media == {"kind": "video", "duration": 30.0, "frames_sampled": 2}
    results: dict[str, Any] = {"metadata": {"taken_at": None, "live_video": "old.MOV"}}
    facts = frames.stamp_media(results, {"width": 1}, media)
    assert facts is results["metadata"] and facts["kind"] == "video" and "live_video" not in facts
    off: dict[str, Any] = {}
    assert frames.stamp_media(off, {"width": 1}, media) == {"width": 1, **media} == off["metadata"]
    failed: dict[str, Any] = {"metadata": {"error": "x"}}
    assert frames.stamp_media(failed, {}, media)["kind"] == "video"
    assert failed["metadata"] == {"error": "x"}


def test_two_alike_people_in_one_frame_stay_two_and_each_follows_its_nearest() -> None:
    def face(x: float, emb: list[float], score: float = 0.9) -> dict[str, Any]:
        return {"box": [x, 0.1, 0.2, 0.3], "score": score, "embedding": emb, "model": "Dlib"}

    a = [1.0, 0.0] + [0.0] * 126
    b = [1.0, 0.45] + [0.0] * 126  # 0.45 from a: within one person's spread, yet two people
    b_later = [1.0, 0.42] + [0.0] * 126  # nearer b (0.03) than a (0.42)
    merged = frames.merge(
        "faces",
        [
            (0.0, {"faces": [face(0.1, a), face(0.6, b)]}),
            (2.0, {"faces": [face(0.6, b_later, 0.99)]}),
        ],
    )
    got = faces_of({"faces": merged}).faces
    assert len(got) == 2
    assert {(f.box[0], f.at) for f in got} == {(0.1, 0.0), (0.6, 2.0)}  # b's best sighting
    assert {t["tag"] for t in merged["tags"]} == {"People", "People|Portrait"}
