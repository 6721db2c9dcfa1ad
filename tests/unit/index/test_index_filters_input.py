"""Filters from the wire: a malformed value is a ValueError (the server's bad_request),
never an internal error further in."""

from __future__ import annotations

import pytest

from photovault.index.filters import Filters


@pytest.mark.parametrize(
    "raw",
    [
        {"tags": [1, {}]},
        {"persons": "Alice"},
        {"near": {"lat": float("inf"), "lon": 0, "km": 5}},
        {"near": {"lat": 91, "lon": 0, "km": 5}},
        {"near": [1, 2]},
        {"near": {"lat": "x", "lon": 0, "km": 5}},
        {"camera": ["Canon"]},
        {"path": 7},
        {"shares": "family"},
    ],
)
def test_a_malformed_filter_is_a_value_error(raw: dict) -> None:
    with pytest.raises(ValueError):
        Filters.from_dict(raw)


def test_well_formed_filters_are_read() -> None:
    f = Filters.from_dict(
        {"tags": ["dog"], "persons": ["Alice"], "near": {"lat": 38.7, "lon": -9.1, "km": 5}}
    )
    assert f.tags == ("dog",) and f.persons == ("Alice",)
    assert f.near_spec() is not None and f.near_spec().lat == 38.7
