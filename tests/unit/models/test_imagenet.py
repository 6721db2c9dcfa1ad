from __future__ import annotations

import re

from photovault.models.imagenet import TAG_RULES, _parse_indices, class_tags, classes


def test_the_class_list_has_1000_wordnet_ids_in_order() -> None:
    listed = classes()
    assert len(listed) == 1000
    assert all(re.fullmatch(r"n\d{8}", c.wnid) for c in listed)
    assert len({c.wnid for c in listed}) == 1000


def test_class_281_is_the_tabby_cat() -> None:
    tabby = classes()[281]
    assert (tabby.wnid, tabby.label) == ("n02123045", "tabby")


def test_no_class_is_mapped_to_two_tags() -> None:
    assert len(class_tags()) == 1000  # building the table raises on overlaps


def test_every_rule_names_existing_classes() -> None:
    assert TAG_RULES  # the loop below checks each rule
    for _tag, spec in TAG_RULES:
        indices = _parse_indices(spec)
        assert indices, spec
        assert all(0 <= i < 1000 for i in indices)


def test_domestic_cats_map_to_animals_cat_and_dog_breeds_to_animals_dog() -> None:
    tags = class_tags()
    assert {tags[i] for i in range(281, 286)} == {"Animals|Cat"}
    assert {tags[i] for i in range(151, 269)} == {"Animals|Dog"}


def test_espresso_and_cup_are_drinks() -> None:
    by_label = {c.label: c.index for c in classes()}
    assert class_tags()[by_label["espresso"]] == "Food|Drink"
    assert class_tags()[by_label["cup"]] == "Food|Drink"


def test_tags_are_hierarchical_with_a_known_top_level() -> None:
    tops = {tag.split("|")[0] for tag, _ in TAG_RULES}
    assert tops <= {
        "Animals",
        "Food",
        "Plants",
        "Places",
        "Vehicles",
        "Sports",
        "People",
        "Events",
        "Objects",
        "Documents",
    }
