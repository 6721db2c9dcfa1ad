"""The typed views of stored analyzer results (results.py): what each stage reads, and
that a missing, failed or partial result reads as "nothing known", never an error."""

from __future__ import annotations

from photovault.results import (
    Place,
    clip_of,
    faces_of,
    metadata_of,
    parse_signature,
    photo_tags,
    tagger_of,
    text_of,
)

STORED = {
    "metadata": {
        "taken_at": "2023-12-24T23:30:00",
        "taken_local": "2023-12-24T23:30:00",
        "gps": {"lat": 38.71, "lon": -9.14},
        "place": {
            "country_code": "PT",
            "country": "Portugal",
            "region": "Lisbon",
            "city": "Lisbon",
        },
        "local_time": {"offset": "+00:00", "zone": "Europe/Lisbon", "source": "position"},
    },
    "tagger": {"tags": [{"tag": "Animals|Cat", "confidence": 0.9}], "labels": [{"label": "cat"}]},
    "clip": {"embedding": [0.6, 0.8]},
    "faces": {"model": "Dlib", "faces": [{"box": [0.1, 0.2, 0.3, 0.4], "score": 0.99}]},
    "text": {
        "lines": [{"text": "TOTAL 12.50", "box": [0, 0, 1, 0.1], "score": 0.97}, {"text": " "}],
        "document": "receipt",
        "tags": [{"tag": "Documents|Receipt", "confidence": 1.0}],
    },
}


def test_each_result_reads_as_its_type() -> None:
    m = metadata_of(STORED)
    assert (m.lat, m.lon, m.taken_local) == (38.71, -9.14, "2023-12-24T23:30:00")
    assert m.place == Place("PT", "Portugal", "Lisbon", "Lisbon")
    assert m.place is not None and m.place.label() == "Lisbon, Portugal"
    assert m.local_time is not None and m.local_time.zone == "Europe/Lisbon"
    assert tagger_of(STORED).labels == ({"label": "cat"},)
    assert clip_of(STORED).embedding == (0.6, 0.8)
    faces = faces_of(STORED)
    assert faces.model == "Dlib" and faces.faces[0].box == (0.1, 0.2, 0.3, 0.4)
    text = text_of(STORED)
    assert text.text == "TOTAL 12.50" and text.document == "receipt"  # blank line dropped
    assert {t["tag"] for t in photo_tags(STORED)} == {"Animals|Cat", "Documents|Receipt"}


def test_missing_failed_and_malformed_results_read_as_nothing_known() -> None:
    failed = {name: {"error": "boom"} for name in STORED}
    for results in ({}, failed, {"metadata": None, "clip": {"embedding": []}, "faces": 3}):
        assert metadata_of(results).place is None
        assert tagger_of(results).labels == ()
        assert clip_of(results).embedding is None
        assert faces_of(results).faces == () and not faces_of(results).analyzed
        assert text_of(results).lines == ()
        assert photo_tags(results) == []
    assert Place.from_dict({"country_code": "PT"}) is None  # no country name: no place


def test_signatures_parse_into_versions() -> None:
    assert parse_signature("metadata:2,text:1") == {"metadata": "2", "text": "1"}
    assert parse_signature("") == {}
