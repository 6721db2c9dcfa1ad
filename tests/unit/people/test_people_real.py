"""Clustering real faces end to end: analyzer embeddings -> PeopleStore.

Only three distinct photos of one real person (Obama) could be assembled
offline with a clear licence; the astronaut photo is added four times as
flipped, cropped and rescaled versions, which checks robustness to editing
rather than to a new photo.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from photovault.analyze.faces import FaceSettings
from photovault.people.store import PeopleStore

from ..conftest import needs_dlib


def variants(pixels: np.ndarray) -> dict[str, np.ndarray]:
    image = Image.fromarray(pixels)
    w, h = image.size
    return {
        "original": pixels,
        "flipped": np.asarray(ImageOps.mirror(image)),
        "cropped": np.asarray(image.crop((w // 8, 0, w - w // 8, h * 3 // 4))),
        "rescaled": np.asarray(image.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BILINEAR)),
    }


@needs_dlib
def test_photos_of_the_same_person_cluster_together_and_a_stranger_waits(
    analyzer, photos, tmp_path
):
    cfg = FaceSettings()
    store = PeopleStore.for_settings(tmp_path, cfg)
    face_ids: dict[str, int] = {}
    labelled = {f"astronaut-{k}": v for k, v in variants(photos["astronaut"]).items()}
    labelled |= {k: photos[k] for k in ("obama", "obama2", "obama3", "biden")}
    for key, pixels in labelled.items():
        faces = analyzer.analyze_pixels(pixels)["faces"]
        assert len(faces) == 1, key
        (face_ids[key],) = store.add_photo_faces(key, faces)

    report = store.cluster()

    assert len(report.new_people) == 2 and report.unassigned == 1
    person = {key: store.person_of(fid) for key, fid in face_ids.items()}
    assert len({person[k] for k in labelled if k.startswith("astronaut")}) == 1
    assert person["obama"] == person["obama2"] == person["obama3"] is not None
    assert person["obama"] != person["astronaut-original"]
    assert person["biden"] is None
    assert (tmp_path / "people.sqlite3").is_file()
