"""The tags of a photo as the person sees them: `sidecar.keywords.person_tags` (#14)."""

from __future__ import annotations

from photovault.sidecar.keywords import person_tags

CAT = {"tag": "Animals|Cat", "confidence": 0.9, "source": "tagger"}
PET = {"tag": "Animals|Pet", "confidence": 0.5, "source": "tags"}


def test_a_keyword_a_person_removed_is_left_out_and_the_others_stay_in_order() -> None:
    assert person_tags([CAT, PET], {"Animals|Cat"}, []) == [PET]


def test_a_keyword_a_person_added_is_a_tag_with_source_person() -> None:
    assert person_tags([CAT], {"Animals|Cat"}, ["Animals|Wolf"]) == [
        {"tag": "Animals|Wolf", "confidence": None, "source": "person"}
    ]


def test_a_keyword_the_analyzer_also_gave_is_listed_once_as_the_analyzer_gave_it() -> None:
    assert person_tags([CAT], set(), ["Animals|Cat", "Holiday", "Holiday"]) == [
        CAT,
        {"tag": "Holiday", "confidence": None, "source": "person"},
    ]


def test_keywords_match_whatever_empty_parts_they_carry() -> None:
    odd = {"tag": "Animals||Cat|", "confidence": 0.9, "source": "tagger"}
    assert person_tags([odd, PET], {"|Animals|Cat"}, ["", "|"]) == [PET]


def test_a_keyword_a_person_removed_and_later_put_back_themselves_is_theirs() -> None:
    assert person_tags([CAT], {"Animals|Cat"}, ["Animals|Cat"]) == [
        {"tag": "Animals|Cat", "confidence": None, "source": "person"}
    ]


def test_without_decisions_the_analyzer_tags_are_unchanged() -> None:
    assert person_tags([CAT, PET], set(), []) == [CAT, PET]
