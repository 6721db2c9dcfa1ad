"""Human `vaultctl` output of places and recognized text, and the new search options."""

from __future__ import annotations

from typing import Any

import pytest

from photovault.cli.vaultctl import (
    _filters,
    build_parser,
    format_places,
    format_results,
    format_show,
    parse_near,
)
from photovault.query.client import ClientError

LISBON = {"country_code": "PT", "country": "Portugal", "region": "Lisboa", "city": "Lisbon"}


def hit(path: str, **over: Any) -> dict[str, Any]:
    h: dict[str, Any] = {
        "path": path,
        "score": 0.5,
        "taken_at": "2023-12-24T23:30:00",
        "tags": [],
        "people": [],
        "text_match": None,
        "place": None,
    }
    h.update(over)
    return h


def test_search_results_show_the_place_and_the_matching_line_under_the_hit() -> None:
    lines = format_results(
        [
            hit("/p/receipt.jpg", place=LISBON, text_match="JALAN PERINDUSTRIANBALAKONG"),
            hit("/p/other.jpg"),
        ]
    )

    assert lines[0].split() == ["score", "path", "date", "place", "tags", "people"]
    assert "/p/receipt.jpg" in lines[1] and "Lisbon, Portugal" in lines[1]
    assert lines[2].strip() == "\u201cJALAN PERINDUSTRIANBALAKONG\u201d"
    assert "/p/other.jpg" in lines[3] and len(lines) == 4


def test_search_results_without_places_keep_the_old_columns() -> None:
    (head, row) = format_results([hit("/p/a.jpg")])
    assert head.split() == ["score", "path", "date", "tags", "people"]
    assert row.split()[:2] == ["0.500", "/p/a.jpg"]


def test_show_prints_the_place_by_name_the_local_time_and_the_first_lines() -> None:
    lines = format_show(
        {
            "path": "/p/receipt.jpg",
            "place": LISBON,
            "local_time": {"offset": "+00:00", "zone": "Europe/Lisbon", "source": "position"},
            "text": [{"text": f"line {i}", "box": [0, 0, 1, 1], "score": 0.9} for i in range(7)],
        }
    )
    text = "\n".join(lines)

    assert "Lisbon, Portugal" in text
    assert "+00:00 (Europe/Lisbon, position)" in text
    assert "7 lines" in text and "line 4" in text and "line 5" not in text
    assert "(2 more)" in text


def test_show_of_a_photo_without_place_or_text_prints_empty_fields() -> None:
    lines = format_show({"path": "/p/a.jpg", "place": None, "local_time": None, "text": []})
    assert lines[1:] == ["place", "local_time", "text        0 lines"]


def test_places_print_country_region_and_town_with_counts() -> None:
    lines = format_places(
        [
            {
                "country_code": "PT",
                "country": "Portugal",
                "photos": 3,
                "regions": [
                    {"region": "Lisboa", "photos": 2, "cities": [{"city": "Lisbon", "photos": 2}]},
                    {"region": None, "photos": 1, "cities": [{"city": None, "photos": 1}]},
                ],
            }
        ]
    )

    assert lines == [
        "Portugal (PT)  3",
        "  Lisboa  2",
        "    Lisbon  2",
        "  (no region)  1",
        "    (no town)  1",
    ]


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("38.7,-9.1", {"lat": 38.7, "lon": -9.1, "km": 5.0}),
        ("38.7, -9.1, 2", {"lat": 38.7, "lon": -9.1, "km": 2.0}),
        ("Lisbon", {"name": "Lisbon"}),
        ("Lisbon,20", {"name": "Lisbon", "km": 20.0}),
        ("Paris, Texas", {"name": "Paris, Texas"}),
    ],
)
def test_near_takes_coordinates_or_a_place_name(given: str, sent: dict[str, Any]) -> None:
    assert parse_near(given) == sent


@pytest.mark.parametrize("given", ["38.7", "1,2,3,4", ",", ""])
def test_near_refuses_what_is_neither(given: str) -> None:
    with pytest.raises(ClientError):
        parse_near(given)


def test_search_sends_the_place_filter_with_the_others() -> None:
    args = build_parser().parse_args(
        ["search", "beach", "--place", "lisboa", "--camera", "pixel", "--near", "Lisbon"]
    )
    assert _filters(args) == {"place": "lisboa", "camera": "pixel", "near": {"name": "Lisbon"}}


def test_places_is_a_command_with_json_output() -> None:
    args = build_parser().parse_args(["places", "--json"])
    assert args.json and args.func.__name__ == "cmd_places"
