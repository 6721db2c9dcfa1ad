"""Recognized text and places in the index: OCR-tolerant matching, place filters,
fusion of text and vector rankings, and the library's places."""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import numpy as np

from photovault.index import Filters, record_from_photo
from photovault.index.records import fold, joined_text, record_from_row
from photovault.index.search import TextQuery, fuse
from photovault.results import Place

from .conftest import DIM, photo, unit

LISBON = Place("PT", "Portugal", "Lisboa", "Lisbon")
PORTO = Place("PT", "Portugal", "Porto", "Porto")
KEHL = Place("DE", "Germany", "Baden-Württemberg", "Kehl")
RECEIPT = "KEDAI ELEKTRIK SDNBHD\nJALAN PERINDUSTRIANBALAKONG\nTOTAL RM 42.00"


def ids(hits: list[Any]) -> list[int]:
    return [h.id for h in hits]


def test_a_query_word_matches_inside_a_word_that_ocr_joined(make_index):
    idx = make_index()
    idx.upsert([photo(1, text=RECEIPT), photo(2, text="NOTHING TO SEE")])
    idx.flush()

    (hit,) = idx.search(None, "balakong", Filters(), 10)

    assert hit.id == 1
    assert hit.text_match == "JALAN PERINDUSTRIANBALAKONG"


def test_words_that_ocr_split_are_found_written_together_and_apart(make_index):
    idx = make_index()
    idx.upsert([photo(1, text="KEDAI SDN BHD"), photo(2, text="KEDAI SDNBHD")])
    idx.flush()

    assert sorted(ids(idx.search(None, "sdnbhd", Filters(), 10))) == [1, 2]
    assert sorted(ids(idx.search(None, "sdn bhd", Filters(), 10))) == [1, 2]


def test_a_whole_word_match_ranks_above_a_match_inside_a_longer_word(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, text="PERINDUSTRIANBALAKONG"),
            photo(2, text="BALAKONG MARKET"),
            photo(3, text="KUALA LUMPUR"),
        ]
    )
    idx.flush()

    hits = idx.search(None, "balakong", Filters(), 10)

    assert ids(hits) == [2, 1]
    assert hits[0].score >= hits[1].score


def test_a_query_word_of_three_letters_does_not_match_inside_longer_words(make_index):
    idx = make_index()
    idx.upsert([photo(1, text="PERINDUSTRIANBALAKONG"), photo(2, text="BAL ROOM")])
    idx.flush()

    assert ids(idx.search(None, "bal", Filters(), 10)) == [2]


def test_substring_matches_hold_the_filters(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, text="PERINDUSTRIANBALAKONG", place=LISBON),
            photo(2, text="PERINDUSTRIANBALAKONG", place=KEHL),
        ]
    )
    idx.flush()

    assert ids(idx.search(None, "balakong", Filters(place="kehl"), 10)) == [2]


def test_quotes_and_operators_in_the_query_are_searched_as_words(make_index):
    idx = make_index()
    idx.upsert([photo(1, text="PLUMBER SERVICES"), photo(2, text="BAKERY")])
    idx.flush()

    assert ids(idx.search(None, '"plumber"', Filters(), 10)) == [1]
    assert ids(idx.search(None, '+plumber -"services" AND (x:', Filters(), 10)) == [1]


def test_a_photo_matching_every_query_word_leads_even_when_one_is_inside_a_joined_word(
    make_index,
):
    idx = make_index()
    idx.upsert(photo(i, text=f"ACME\nINVOICE NUMBER {i}") for i in range(1, 40))
    idx.upsert([photo(40, text="JOESPLUMBER SDN BHD\nINVOICE 77")])
    idx.flush()

    hits = idx.search(None, "plumber invoice", Filters(), 5)

    assert hits[0].id == 40
    assert len(hits) == 5
    assert all(a.score >= b.score for a, b in pairwise(hits))


def test_a_substring_match_is_found_past_thousands_of_candidates_the_caller_cannot_read(
    make_index,
):
    idx = make_index()
    # Short texts holding every 4-gram of "plumber", but not the word: they
    # outrank the long receipt on the n-gram index.
    idx.upsert(photo(i, text="PLUMBING LUMBER") for i in range(1, 4500))
    receipt = "JOESPLUMBER SDN BHD\nJALAN PERINDUSTRIAN BALAKONG 43300 SELANGOR\nTOTAL RM 42.00"
    idx.upsert([photo(5000, text=receipt)])
    idx.flush()
    idx.maintain()

    readable = {"/srv/photos/misc/IMG_5000.jpg"}
    assert ids(idx.search(None, "plumber", Filters(allowed=readable), 5)) == [5000]
    assert ids(idx.search(None, "plumber", Filters(), 5)) == [5000]


def test_a_run_of_single_letters_finds_the_letters_written_with_or_without_dots(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, text="D.I.Y. CENTRE"),
            photo(2, text="DIY HARDWARE"),
            photo(3, text="DAILY NEWS"),
        ]
    )
    idx.flush()

    assert sorted(ids(idx.search(None, "D.I.Y.", Filters(), 10))) == [1, 2]
    assert ids(idx.search(None, "d i y centre", Filters(), 10))[0] == 1


def test_place_filter_takes_town_region_country_or_code_accent_and_case_insensitively(
    make_index,
):
    idx = make_index()
    idx.upsert(
        [
            photo(1, place=LISBON, camera="Pixel 7"),
            photo(2, place=PORTO, camera="iPhone 12"),
            photo(3, place=KEHL),
            photo(4),
        ]
    )
    idx.flush()

    def place(name: str, **kw: Any) -> list[int]:
        return sorted(ids(idx.search(None, None, Filters(place=name, **kw), 10)))

    assert place("lisboa") == place("LISBON") == [1]
    assert place("Portugal") == place("PT") == place("pt") == [1, 2]
    assert place("baden-wurttemberg") == place("BADEN-WÜRTTEMBERG") == [3]
    assert place("Lis") == []  # a name, not a prefix
    assert place("Portugal", camera="iphone") == [2]


def test_place_filter_also_matches_the_other_keys_the_server_resolved(make_index):
    idx = make_index()
    idx.upsert([photo(1, place=LISBON), photo(2, place=KEHL), photo(3)])
    idx.flush()

    germany = Filters(place="Deutschland", place_also=("de",))
    assert ids(idx.search(None, None, germany, 10)) == [2]
    both = Filters(place="lisboa", place_also=("kehl",))
    assert sorted(ids(idx.search(None, None, both, 10))) == [1, 2]


def test_place_filter_finds_a_district_by_the_city_it_lies_in(make_index):
    idx = make_index()
    kreuzberg = Place("DE", "Germany", "State of Berlin", "Kreuzberg", within="Berlin")
    idx.upsert([photo(1, place=kreuzberg), photo(2, place=KEHL)])
    idx.flush()

    assert ids(idx.search(None, None, Filters(place="berlin"), 10)) == [1]
    assert ids(idx.search(None, None, Filters(place="Kreuzberg"), 10)) == [1]
    assert idx.search(None, None, Filters(place="berlin"), 10)[0].place["city"] == "Kreuzberg"


def test_place_names_match_in_free_text_and_hits_carry_the_place(make_index):
    idx = make_index()
    idx.upsert([photo(1, place=LISBON), photo(2, place=KEHL)])
    idx.flush()

    (hit,) = idx.search(None, "Lisbon", Filters(), 10)

    assert hit.id == 1
    assert hit.place == LISBON.to_dict()
    assert ids(idx.search(None, "portugal", Filters(), 10)) == [1]


def test_text_and_vector_rankings_fuse_so_a_photo_matching_both_leads(make_index):
    idx = make_index()
    beach = unit(np.eye(DIM)[0])
    city = unit(np.eye(DIM)[1])
    idx.upsert(
        [
            # nearest to the query vector, but elsewhere
            photo(1, vector=beach, place=KEHL),
            # a beach in Portugal: second by vector, and its place matches the text
            photo(2, vector=unit(beach + 0.3 * city), place=LISBON),
            # in Portugal, not a beach
            photo(3, vector=city, place=PORTO),
        ]
    )
    idx.flush()

    by_vector = idx.search(beach, None, Filters(), 10)
    fused = idx.search(beach, "beach Portugal", Filters(), 10)

    assert ids(by_vector)[:2] == [1, 2]
    assert ids(fused)[0] == 2
    assert sorted(ids(fused)) == [1, 2, 3]
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_with_a_vector_a_photo_found_only_by_its_text_still_leads(make_index):
    idx = make_index()
    q = unit(np.eye(DIM)[0])
    idx.upsert(photo(i, vector=unit(np.eye(DIM)[0] + 0.1 * i * np.eye(DIM)[1])) for i in range(30))
    idx.upsert([photo(99, vector=unit(-np.eye(DIM)[0]), text="JALAN PERINDUSTRIANBALAKONG")])
    idx.flush()

    assert 99 not in ids(idx.search(q, None, Filters(), 10))
    hits = idx.search(q, "balakong", Filters(), 10)

    assert ids(hits)[:2] == [99, 0]
    assert hits[0].text_match == "JALAN PERINDUSTRIANBALAKONG"


def test_fusion_keeps_filters_and_uses_the_memory_index_when_it_serves(make_index):
    idx = make_index(memory_train_rows=10)
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((60, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx.upsert(
        photo(i, vector=vecs[i], place=LISBON if i % 2 else KEHL, text="TICKET" if i == 7 else "")
        for i in range(60)
    )
    idx.flush()
    idx.load_memory()
    assert idx.memory_status()["serving"]

    fused = idx.search(vecs[20], "ticket", Filters(), 5)
    assert set(ids(fused)[:2]) == {20, 7}
    assert fused[[h.id for h in fused].index(7)].text_match == "TICKET"

    filtered = idx.search(vecs[20], "ticket", Filters(place="portugal"), 5)
    assert ids(filtered)[0] == 7 and all(h.id % 2 for h in filtered)


def test_reciprocal_rank_fusion_adds_the_ranks_of_every_list():
    a, b, c = ({"id": i} for i in (1, 2, 3))

    fused = fuse([[a, b, c], [b]])

    assert [row["id"] for row, _ in fused] == [2, 1, 3]
    assert [score for _, score in fused] == [1 / 62 + 1 / 61, 1 / 61, 1 / 63]


def test_query_terms_are_long_words_adjacent_pairs_and_the_whole_query():
    q = TextQuery.of("Sdn Bhd  Balakong, x")

    assert q.words == ("sdn", "bhd", "balakong", "x")
    assert q.terms == ("balakong", "balakongx", "bhdbalakong", "sdnbhd", "sdnbhdbalakongx")


def test_a_run_of_single_letters_is_one_unit_and_a_three_letter_term():
    q = TextQuery.of("D.I.Y. store")

    assert q.units == ("diy", "store")
    assert q.terms == ("diy", "diystore", "store")


def test_folding_drops_accents_case_and_extra_spaces():
    assert fold("  São   Paulo ") == "sao paulo"
    assert fold("KÖLN") == "koln"
    assert joined_text("SDN BHD\n\nNo. 12-A") == "sdnbhd no12a"


def test_places_counts_photos_by_country_region_and_town_within_the_filters(make_index):
    idx = make_index()
    idx.upsert(
        [
            photo(1, place=LISBON),
            photo(2, place=LISBON),
            photo(3, place=PORTO),
            photo(4, place=Place("PT", "Portugal")),
            photo(5, place=KEHL, path="private/k.jpg"),
            photo(6),
        ]
    )
    idx.flush()

    assert idx.places() == [
        {
            "country_code": "PT",
            "country": "Portugal",
            "photos": 4,
            "regions": [
                {"region": "Lisboa", "photos": 2, "cities": [{"city": "Lisbon", "photos": 2}]},
                {"region": "Porto", "photos": 1, "cities": [{"city": "Porto", "photos": 1}]},
                {"region": None, "photos": 1, "cities": [{"city": None, "photos": 1}]},
            ],
        },
        {
            "country_code": "DE",
            "country": "Germany",
            "photos": 1,
            "regions": [
                {
                    "region": "Baden-Württemberg",
                    "photos": 1,
                    "cities": [{"city": "Kehl", "photos": 1}],
                }
            ],
        },
    ]
    hidden = idx.places(Filters(allowed=lambda p: "/private/" not in p))
    assert [c["country_code"] for c in hidden] == ["PT"]


def test_a_record_reads_place_local_time_and_text_through_the_results(make_index):
    results = {
        "metadata": {
            "taken_at": "2023-12-25T07:30:00+08:00",  # the camera kept its home zone
            "taken_local": "2023-12-24T23:30:00",
            "gps": {"lat": 48.57, "lon": 7.81},
            "place": KEHL.to_dict(),
            "local_time": {"offset": "+01:00", "zone": "Europe/Berlin", "source": "position"},
        },
        "text": {"lines": [{"text": "FROHE", "box": [0, 0, 1, 1], "score": 0.9}, {"text": ""}]},
    }
    p = SimpleNamespace(
        file=SimpleNamespace(id=1, share="main", relpath="x.jpg"),
        path=None,
        sha256="a" * 64,
        facts={},
        results=results,
    )

    rec = record_from_photo(p)

    assert rec.place == KEHL and rec.text == "FROHE" and (rec.lat, rec.lon) == (48.57, 7.81)
    assert rec.taken_local == "2023-12-24T23:30:00"
    idx = make_index()
    idx.upsert([rec])
    idx.flush()
    # Christmas Eve at the place, though Christmas morning by the camera's clock
    assert ids(
        idx.search(None, None, Filters(after=date(2023, 12, 24), before=date(2023, 12, 25)), 5)
    ) == [1]
    row = idx.get(1)
    assert row is not None
    again = record_from_row(row)
    assert (again.place, again.text, again.taken_local) == (KEHL, "FROHE", "2023-12-24T23:30:00")


def test_a_move_keeps_the_text_and_the_place(make_index):
    idx = make_index()
    idx.upsert([photo(1, path="a/x.jpg", text="PERINDUSTRIANBALAKONG", place=LISBON)])
    idx.flush()

    idx.move("main", "a", "b")

    (hit,) = idx.search(None, "balakong", Filters(place="lisbon"), 5)
    assert hit.path == "b/x.jpg" and hit.place == LISBON.to_dict()
