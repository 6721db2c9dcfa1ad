"""Pipeline photos become index rows: the mapping from analyzer results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photovault.catalog.store import FileRow
from photovault.index import IndexSink, record_from_photo
from photovault.index.records import local_time, path_words, tag_keys
from photovault.pipeline.worker import Photo


def pipeline_photo(results: dict, facts: dict | None = None) -> Photo:
    row = FileRow(
        id=42,
        share="main",
        relpath="2023/Lisbon/IMG_1.jpg",
        size=1234,
        mtime_ns=5,
        state="processing",
        attempts=0,
        last_error=None,
        sha256="ab",
    )
    return Photo(
        file=row,
        path=Path("/srv/photos/2023/Lisbon/IMG_1.jpg"),
        sha256="ab",
        facts=facts or {},
        results=results,
        image=None,
    )


def test_a_pipeline_photo_maps_every_analyzer_result_to_its_column():
    photo = pipeline_photo(
        {
            "metadata": {
                "taken_at": "2023-05-01T10:00:00+01:00",
                "gps": {"lat": 38.7, "lon": -9.1},
                "camera": "Canon EOS R5",
                "width": 6000,
                "height": 4000,
                "dhash": "00ff00ff00ff00ff",
            },
            "tagger": {
                "tags": [{"tag": "Animals|Dog", "confidence": 0.8, "source": "tagger"}],
                "labels": [{"synset": "n1", "label": "pug", "score": 0.6}],
            },
            "clip": {"embedding": [0.5] * 4},
            "faces": {
                "faces": [
                    {
                        "box": [0.1, 0.2, 0.3, 0.4],
                        "score": 0.9,
                        "person_id": 3,
                        "person": "Alice",
                        "embedding": [1.0, 0.0],
                    }
                ]
            },
        }
    )

    rec = record_from_photo(photo)

    assert (rec.id, rec.share, rec.path, rec.abs_path) == (
        42,
        "main",
        "2023/Lisbon/IMG_1.jpg",
        "/srv/photos/2023/Lisbon/IMG_1.jpg",
    )
    assert (rec.sha256, rec.size, rec.mtime_ns) == ("ab", 1234, 5)
    assert (rec.lat, rec.lon, rec.camera, rec.width, rec.height) == (
        38.7,
        -9.1,
        "Canon EOS R5",
        6000,
        4000,
    )
    assert rec.dhash == "00ff00ff00ff00ff"
    assert rec.tags[0]["tag"] == "Animals|Dog" and rec.labels[0]["label"] == "pug"
    assert rec.vector is not None and rec.vector.dtype == np.float32
    assert rec.people == ["Alice"] and rec.person_ids == [3]
    assert rec.faces is not None and rec.faces[0].box == (0.1, 0.2, 0.3, 0.4)


def test_failed_or_missing_analyzers_leave_their_columns_empty_and_facts_fill_in():
    photo = pipeline_photo(
        {"tagger": {"error": "boom"}}, facts={"taken_at": "2023-05-01T10:00:00", "camera": "X"}
    )

    rec = record_from_photo(photo)

    assert rec.tags == [] and rec.vector is None and rec.faces is None
    assert rec.camera == "X" and rec.taken_at == "2023-05-01T10:00:00"


def test_the_sink_queues_pipeline_photos_in_the_index(make_index):
    idx = make_index(vector_dim=4)
    sink = IndexSink(idx)

    sink.store([pipeline_photo({"clip": {"embedding": [0.5] * 4}})])
    idx.flush()

    assert sink.name == "index"
    assert idx.get(42)["path"] == "2023/Lisbon/IMG_1.jpg"


def test_a_vector_of_the_wrong_size_is_stored_as_null_not_fatal(make_index):
    idx = make_index(vector_dim=4)

    idx.store([pipeline_photo({"clip": {"embedding": [0.5] * 3}})])
    idx.flush()

    assert idx.get(42)["vector"] is None


def test_tag_keys_cover_paths_ancestors_and_segments():
    assert tag_keys([{"tag": "Animals|Dog"}, {"tag": "Places|Beach "}]) == [
        "animals",
        "animals|dog",
        "beach",
        "dog",
        "places",
        "places|beach",
    ]


def test_path_words_split_folders_and_separators():
    assert path_words("2023/Beach_Trip/IMG-01.jpg") == "2023 Beach Trip IMG 01 jpg"


def test_local_time_drops_the_offset_and_reads_exif_style_dates():
    assert str(local_time("2023-05-01T23:30:00-07:00")) == "2023-05-01 23:30:00"
    assert str(local_time("2023:05:01 10:00:00")) == "2023-05-01 10:00:00"
    assert local_time("garbage") is None


def test_zero_shot_clip_tags_are_indexed_beside_the_taggers_and_errors_add_none():
    rec = record_from_photo(
        pipeline_photo(
            {
                "tagger": {"tags": [{"tag": "Animals|Dog", "confidence": 0.9, "source": "tagger"}]},
                "tags": {"tags": [{"tag": "Places|Beach", "confidence": 0.4, "source": "clip"}]},
                "faces": {"error": "dlib missing"},
            }
        )
    )
    assert [t["tag"] for t in rec.tags] == ["Animals|Dog", "Places|Beach"]
    assert record_from_photo(pipeline_photo({"tags": {"error": "no clip"}})).tags == []
