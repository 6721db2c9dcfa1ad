"""Paths are bytes: the index stores any file name losslessly and gives it back.

Python hands file names around as str with bytes that are not UTF-8 as lone
surrogates (os.fsdecode); Arrow strings must be UTF-8, so the index stores an
escaped form (records.storable) and search results carry the real path again.
"""

from __future__ import annotations

import os

import pytest

from photovault.index import SCHEMA_VERSION, Filters, IndexSettings, PhotoIndex
from photovault.index.records import restore_path, storable
from photovault.index.schema import read_meta, write_meta

from .conftest import DIM, photo

CAFE_LATIN1 = os.fsdecode(b"trip/caf\xe9.jpg")  # what os.listdir gives for the name
CAFE_TEXT = "trip/caf\\xe9.jpg"  # a UTF-8 name that spells the escape out


def stored_photo(i: int, path: str) -> object:
    """A record as record_from_photo builds it: paths in their stored form."""
    return photo(i, path=storable(path), abs_path=storable("/srv/photos/" + path))


def hit_paths(idx: PhotoIndex, filters: Filters | None = None) -> list[bytes]:
    return sorted(os.fsencode(h.path) for h in idx.search(None, None, filters or Filters(), 1000))


@pytest.mark.parametrize(
    "raw",
    [
        b"plain/IMG_0001.jpg",
        "2023/café/Ünïcödé 📷.jpg".encode(),
        b"caf\xe9.jpg",
        b"\x80\xff\xc3(\xe2\x82.jpg",  # bad lead, bad continuation, truncated sequence
        b"back\\slash.jpg",
        b"caf\\xe9.jpg",  # the text of an escape, not a byte
        b"caf\\\xe9\\\\x.jpg",
        b"trailing\\",
    ],
)
def test_every_name_comes_back_as_the_same_bytes_from_valid_utf8(raw: bytes) -> None:
    path = os.fsdecode(raw)

    stored = storable(path)

    stored.encode("utf-8")  # what Arrow needs
    assert os.fsencode(restore_path(stored)) == raw


def test_a_latin1_name_and_the_text_of_its_escape_are_stored_apart() -> None:
    assert storable(CAFE_LATIN1) != storable(CAFE_TEXT)


def test_a_utf8_name_without_backslashes_is_stored_as_it_is() -> None:
    assert storable("2023/café/IMG 1.jpg") == "2023/café/IMG 1.jpg"


def test_search_gives_back_the_bytes_of_a_name_that_is_not_utf8(make_index):
    idx = make_index()
    idx.upsert([stored_photo(1, CAFE_LATIN1), stored_photo(2, CAFE_TEXT)])
    idx.flush()

    (hit,) = [h for h in idx.search(None, None, Filters(), 10) if h.id == 1]

    assert os.fsencode(hit.path) == b"trip/caf\xe9.jpg"
    assert os.fsencode(hit.abs_path) == b"/srv/photos/trip/caf\xe9.jpg"
    assert hit_paths(idx) == [b"trip/caf\\xe9.jpg", b"trip/caf\xe9.jpg"]


def test_a_delete_of_a_name_that_is_not_utf8_leaves_its_lookalike(make_index):
    idx = make_index()
    idx.upsert([stored_photo(1, CAFE_LATIN1), stored_photo(2, CAFE_TEXT)])
    idx.flush()

    assert idx.delete("main", CAFE_LATIN1) == 1

    assert hit_paths(idx) == [b"trip/caf\\xe9.jpg"]


def test_moving_a_folder_whose_name_is_not_utf8_keeps_the_bytes(make_index):
    idx = make_index()
    folder = os.fsdecode(b"\xe9t\xe9")
    idx.upsert([stored_photo(1, folder + "/a.jpg"), stored_photo(2, "other/b.jpg")])
    idx.flush()

    assert idx.move("main", folder, "2023/" + folder) == 1

    assert hit_paths(idx) == [b"2023/\xe9t\xe9/a.jpg", b"other/b.jpg"]
    (hit,) = [h for h in idx.search(None, None, Filters(), 10) if h.id == 1]
    assert os.fsencode(hit.abs_path) == b"/srv/photos/2023/\xe9t\xe9/a.jpg"


def test_a_path_glob_with_a_byte_that_is_not_utf8_finds_the_file(make_index):
    idx = make_index()
    idx.upsert([stored_photo(1, CAFE_LATIN1), stored_photo(2, CAFE_TEXT)])
    idx.flush()

    def ids(pattern: str) -> list[int]:
        return sorted(h.id for h in idx.search(None, None, Filters(path=pattern), 10))

    assert ids(os.fsdecode(b"trip/caf\xe9*")) == [1]
    assert ids("trip/caf?.jpg") == [1]  # one byte is one character
    assert ids("trip/caf\\xe9.jpg") == [2]
    assert ids(os.fsdecode(b"/srv/photos/*\xe9.jpg")) == [1]


def test_the_permission_check_is_asked_about_the_real_path(make_index):
    idx = make_index()
    idx.upsert([stored_photo(1, CAFE_LATIN1), stored_photo(2, "trip/other.jpg")])
    idx.flush()
    asked: list[bytes] = []

    def allowed(abs_path: str) -> bool:
        asked.append(os.fsencode(abs_path))
        return os.fsencode(abs_path) == b"/srv/photos/trip/caf\xe9.jpg"

    hits = idx.search(None, None, Filters(allowed=allowed), 10)

    assert [h.id for h in hits] == [1]
    assert b"/srv/photos/trip/caf\xe9.jpg" in asked


def test_an_index_of_schema_1_is_migrated_to_lossless_paths(tmp_path):
    """Schema 1 stored bad bytes as \\xNN and backslashes as they were."""
    folder = tmp_path / "index"
    settings = IndexSettings(vector_dim=DIM, face_dim=4)
    old = {
        1: ("trip/caf\\xe9.jpg", b"trip/caf\xe9.jpg"),  # a Latin-1 name
        2: ("win\\dows.jpg", b"win\\dows.jpg"),  # a UTF-8 name with a backslash
        3: ("a\\b\\xff.jpg", b"a\\b\xff.jpg"),  # both
        4: ("plain.jpg", b"plain.jpg"),
    }
    v1 = PhotoIndex(folder, settings)
    v1.upsert(photo(i, path=text, abs_path="/srv/photos/" + text) for i, (text, _) in old.items())
    v1.close()
    write_meta(folder, {**read_meta(folder), "schema_version": 1})

    idx = PhotoIndex(folder, settings)
    try:
        hits = {h.id: h for h in idx.search(None, None, Filters(), 10)}
        assert {i: os.fsencode(h.path) for i, h in hits.items()} == {
            i: raw for i, (_text, raw) in old.items()
        }
        assert os.fsencode(hits[2].abs_path) == b"/srv/photos/win\\dows.jpg"
        assert idx.delete("main", "win\\dows.jpg") == 1  # found under its new form
    finally:
        idx.close()
    assert read_meta(folder)["schema_version"] == SCHEMA_VERSION
