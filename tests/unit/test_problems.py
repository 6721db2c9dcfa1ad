"""photovault.problems: current faults, keyed, cleared by their reporter."""

from __future__ import annotations

import pytest

from photovault.problems import KINDS, Problems


def test_a_problem_keeps_its_first_time_while_it_is_reported_again() -> None:
    t = [100.0]
    p = Problems(clock=lambda: t[0])
    assert p.report("disk", "state dir full") is True
    t[0] = 160.0
    assert p.report("disk", "state dir still full") is False
    (only,) = p.snapshot()
    assert only.since == 100.0 and only.message == "state dir still full"


def test_problems_are_keyed_and_clear_one_at_a_time() -> None:
    p = Problems()
    p.report("share", "photos missing", key="photos", path="/srv/photos")
    p.report("share", "phone missing", key="phone")
    assert p.counts()["share"] == 2 and set(p.counts()) == set(KINDS)
    assert p.clear("share", "photos") is True
    assert p.clear("share", "photos") is False
    assert [x.key for x in p.snapshot()] == ["phone"]
    assert p.snapshot()[0].as_dict() == {
        "kind": "share",
        "since": p.snapshot()[0].since,
        "message": "phone missing",
    }


def test_an_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown problem kind"):
        Problems().report("weather", "rain")
