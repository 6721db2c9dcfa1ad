"""similar(): near-duplicates by dHash first, then by image-embedding cosine."""

from __future__ import annotations

import numpy as np
import pytest

from photovault.index import Filters

from .conftest import DIM, photo, unit


def test_a_near_duplicate_comes_first_even_when_its_vector_is_further(make_index):
    idx = make_index()
    rng = np.random.default_rng(5)
    base = unit(rng.standard_normal(DIM))
    idx.upsert(
        [
            photo(1, dhash="f0f0f0f0f0f0f0f0", vector=base),
            # a re-encoded copy: dHash 2 bits off, embedding drifted a little
            photo(2, dhash="f0f0f0f0f0f0f0f3", vector=unit(base + 0.3 * rng.standard_normal(DIM))),
            # a different photo of the same scene: closer embedding, unrelated dHash
            photo(3, dhash="0123456789abcdef", vector=unit(base + 0.05 * rng.standard_normal(DIM))),
            photo(4, dhash="fedcba9876543210", vector=unit(rng.standard_normal(DIM))),
        ]
    )
    idx.flush()

    hits = idx.similar(1, 3)

    assert [h.id for h in hits] == [2, 3, 4]
    assert hits[0].dhash_distance == 2
    assert hits[1].dhash_distance is None
    assert hits[1].score > hits[2].score


def test_similar_by_content_hash_finds_an_exact_copy_first(make_index):
    idx = make_index()
    v = unit(np.arange(DIM) + 1.0)
    idx.upsert(
        [
            photo(1, sha256="same", dhash="00000000000000ff", vector=v),
            photo(2, sha256="same", path="copy.jpg", dhash="00000000000000ff", vector=v),
            photo(3, dhash="ffffffffffffff00", vector=unit(v + 0.1)),
        ]
    )
    idx.flush()

    hits = idx.similar("same", 5)

    assert hits[0].id in (1, 2)
    assert hits[0].dhash_distance == 0
    assert len(hits) == 2


def test_similar_finds_near_duplicates_of_photos_without_vectors(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, dhash="0000000000000000"),
            photo(2, dhash="0000000000000007"),
            photo(3, dhash="00000000000000ff"),
        ]
    )
    idx.flush()

    assert [h.id for h in idx.similar(1, 5)] == [2]


def test_similar_respects_the_permission_filter(make_index):
    idx = make_index()
    v = unit(np.ones(DIM))
    idx.upsert(
        [
            photo(1, dhash="0" * 16, vector=v),
            photo(2, path="private/x.jpg", dhash="0" * 16, vector=v),
            photo(3, path="public/y.jpg", dhash="f" * 16, vector=unit(v + 0.1)),
        ]
    )
    idx.flush()

    hits = idx.similar(1, 5, Filters(allowed=lambda p: "/private/" not in p))

    assert [h.id for h in hits] == [3]


def test_similar_names_an_unknown_photo(make_index):
    idx = make_index()

    with pytest.raises(KeyError):
        idx.similar(99, 5)


def test_near_duplicates_are_found_when_the_top_bit_of_the_dhash_is_set(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, dhash="8000000000000001"),
            photo(2, dhash="8000000000000003"),
            photo(3, dhash="0000000000000001"),
            photo(4, dhash="7fffffffffffffff"),
        ]
    )
    idx.flush()

    hits = idx.similar(1, 5)

    assert [(h.id, h.dhash_distance) for h in hits] == [(3, 1), (2, 1)] or [
        (h.id, h.dhash_distance) for h in hits
    ] == [(2, 1), (3, 1)]
