"""A photo with faces gets `People` and `People|Portrait` (1-2 faces) or `People|Group`
(3 or more): from the faces analyzer, through the one tag reader that show, the
search index and the sidecars share."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from photovault.analyze.faces import people_tags
from photovault.index.records import record_from_photo
from photovault.results import photo_tags
from photovault.sidecar.stage import build_content

from ..conftest import needs_dlib
from ..faces.test_hard_cases import face_tile


def names(tags: list[dict]) -> list[str]:
    return [t["tag"] for t in tags]


def test_one_or_two_faces_are_a_portrait_three_or_more_a_group_none_no_keyword():
    assert names(people_tags(0)) == []
    assert names(people_tags(1)) == names(people_tags(2)) == ["People", "People|Portrait"]
    assert names(people_tags(3)) == names(people_tags(60)) == ["People", "People|Group"]
    assert {t["source"] for t in people_tags(5)} == {"faces"}


@needs_dlib
def test_a_real_portrait_is_tagged_people_and_portrait(analyzer, photos):
    result = analyzer.analyze_pixels(photos["obama"])
    assert len(result["faces"]) == 1
    assert names(result["tags"]) == ["People", "People|Portrait"]


@needs_dlib
def test_a_real_group_of_three_is_tagged_people_and_group(analyzer, photos):
    tiles = []
    for name in ("obama", "biden", "astronaut"):
        (face,) = analyzer.analyze_pixels(photos[name])["faces"]
        tiles.append(face_tile(photos[name], face["box"], 200))
    group = Image.new("RGB", (600, 260), (90, 90, 90))
    for i, tile in enumerate(tiles):
        group.paste(tile, (i * 200, 30))
    result = analyzer.analyze_pixels(np.asarray(group))
    assert len(result["faces"]) == 3
    assert names(result["tags"]) == ["People", "People|Group"]


def test_show_the_index_and_sidecars_all_read_the_people_keywords():
    results = {
        "faces": {
            "tags": people_tags(1),
            "faces": [{"box": [0.1, 0.1, 0.2, 0.2], "score": 1.0, "model": "Dlib"}],
        },
        "tagger": {"tags": [{"tag": "Animals|Dog", "confidence": 0.9, "source": "tagger"}]},
    }
    assert names(photo_tags(results)) == ["Animals|Dog", "People", "People|Portrait"]
    content = build_content(results, [], "faces:2")
    assert {"|".join(k.path) for k in content.keywords} == {
        "Animals|Dog",
        "People",
        "People|Portrait",
    }
    row = SimpleNamespace(id=1, share="s", relpath="a.jpg", size=1, mtime_ns=1)
    photo = SimpleNamespace(file=row, path=None, sha256="x", facts={}, results=results, image=None)
    record = record_from_photo(photo)
    assert "People|Portrait" in names(record.tags)
