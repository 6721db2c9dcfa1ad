from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.faces import (
    DLIB_FILES,
    FacesAnalyzer,
    FaceSettings,
    build_engine,
    create,
    face_settings,
    weights_dir,
)
from photovault.media.decode import decode_image
from photovault.media.types import DecodedImage, PhotoMetadata

from ..conftest import needs_deepface, needs_dlib

# Face centres (x, y as fractions) checked by eye in each fixture.
EXPECTED_FACE_CENTRES = {
    "astronaut": (0.43, 0.24),
    "obama": (0.55, 0.24),
    "obama2": (0.49, 0.38),
    "obama3": (0.56, 0.19),
    "biden": (0.60, 0.17),
}


def item(pixels: np.ndarray, file_id: int = 1) -> AnalysisItem:
    return AnalysisItem(
        file_id=file_id,
        path=Path(f"/photos/{file_id}.jpg"),
        sha256=f"{file_id:064d}",
        image=DecodedImage(pixels=pixels, stored_size=(pixels.shape[1], pixels.shape[0])),
        metadata=PhotoMetadata(),
    )


def centre(box: list[float]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def test_settings_fall_back_to_defaults_when_the_config_has_no_faces_section():
    assert face_settings(SimpleNamespace()) == FaceSettings()
    assert face_settings(SimpleNamespace(faces={"min_face_px": 60})).min_face_px == 60


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        FaceSettings.model_validate({"detecter": "dlib"})


@needs_dlib
@pytest.mark.parametrize("name", sorted(EXPECTED_FACE_CENTRES))
def test_detection_finds_the_one_face_in_each_real_photo(analyzer, photos, name):
    faces = analyzer.analyze_pixels(photos[name])["faces"]
    assert len(faces) == 1
    face = faces[0]
    cx, cy = centre(face["box"])
    ex, ey = EXPECTED_FACE_CENTRES[name]
    assert abs(cx - ex) < 0.05 and abs(cy - ey) < 0.05, (name, face["box"])
    assert all(0.0 <= v <= 1.0 for v in face["box"])
    assert len(face["embedding"]) == 128
    assert face["model"] == "Dlib" and face["detector"] == "dlib"


@needs_dlib
@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_a_photo_without_faces_returns_an_empty_list(analyzer, name):
    from skimage import data

    assert analyzer.analyze_pixels(getattr(data, name)()) == {"tags": [], "faces": []}


@needs_dlib
def test_a_photo_rotated_90_degrees_and_reoriented_by_exif_gives_the_same_box(
    analyzer, photos, tmp_path
):
    upright = photos["obama"]
    expected = analyzer.analyze_pixels(upright)["faces"][0]["box"]
    # Store the pixels turned 90 degrees clockwise with EXIF orientation 6
    # ("rotate 90 clockwise to view"), as a camera held sideways does;
    # ROTATE_90 turns the upright pixels counter-clockwise.
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, quality=95, exif=exif)
    decoded = decode_image(path, 1024)
    assert decoded.pixels.shape[:2] == upright.shape[:2]
    box = analyzer.analyze_pixels(decoded.pixels)["faces"][0]["box"]
    assert np.allclose(box, expected, atol=0.02), (box, expected)


@needs_dlib
def test_faces_smaller_than_min_face_px_are_skipped(state_dir, photos):
    face_px = 88  # the astronaut's face box is ~88-95 px wide in the 512 px image
    small = FaceSettings(min_face_px=face_px + 20)
    skipping = FacesAnalyzer(build_engine(small, state_dir), small)
    assert skipping.analyze_pixels(photos["astronaut"]) == {"tags": [], "faces": []}


@needs_dlib
def test_a_small_real_face_is_kept_above_min_face_px_and_skipped_below_it(state_dir, photos):
    small = np.asarray(Image.fromarray(photos["obama"]).resize((160, 200)))  # face ~45 px wide
    found = {}
    for limit in (40, 50):
        cfg = FaceSettings(min_face_px=limit)
        found[limit] = FacesAnalyzer(build_engine(cfg, state_dir), cfg).analyze_pixels(small)
    assert len(found[40]["faces"]) == 1
    assert 40 <= found[40]["faces"][0]["box"][2] * 160 < 50
    assert found[50] == {"tags": [], "faces": []}


@needs_dlib
def test_faces_scored_below_min_score_are_skipped(state_dir, photos):
    strict = FaceSettings(min_score=5.0)
    analyzer = FacesAnalyzer(build_engine(strict, state_dir), strict)
    assert analyzer.analyze_pixels(photos["astronaut"]) == {"tags": [], "faces": []}


@needs_dlib
def test_the_same_person_is_closer_than_different_people(analyzer, photos):
    emb = {
        name: np.asarray(analyzer.analyze_pixels(px)["faces"][0]["embedding"])
        for name, px in photos.items()
    }
    same = [("obama", "obama2"), ("obama", "obama3"), ("obama2", "obama3")]
    other = [(a, b) for a in ("obama", "obama2", "obama3") for b in ("biden", "astronaut")]
    same_d = [np.linalg.norm(emb[a] - emb[b]) for a, b in same]
    other_d = [np.linalg.norm(emb[a] - emb[b]) for a, b in other]
    default = FaceSettings()
    assert max(same_d) < default.cluster_distance < min(other_d)


@needs_dlib
def test_one_bad_image_fails_only_that_photo(analyzer, photos):
    grey = np.zeros((64, 64), dtype=np.uint8)
    out = analyzer.analyze([item(photos["astronaut"], 1), item(grey, 2), item(photos["biden"], 3)])
    assert isinstance(out[1], AnalyzerError)
    assert len(out[0]["faces"]) == 1 and len(out[2]["faces"]) == 1
    assert analyzer.status()["model"] == "Dlib"


@needs_dlib
def test_create_copies_the_pip_weights_into_the_deepface_home_of_the_state_dir(tmp_path, photos):
    context = AnalyzerContext(state_dir=tmp_path, model_store=None, session_factory=None)
    analyzer = create(SimpleNamespace(), context)
    for name in DLIB_FILES.values():
        assert (tmp_path / "deepface" / ".deepface" / "weights" / name).is_file()
    assert weights_dir(tmp_path) == tmp_path / "deepface" / ".deepface" / "weights"
    assert analyzer.image_side == 1024 and analyzer.name == "faces"
    assert len(analyzer.analyze([item(photos["astronaut"])])[0]["faces"]) == 1
    analyzer.close()


@needs_dlib
def test_the_cnn_detector_finds_the_turned_face_in_camera_that_hog_misses(state_dir):
    from skimage import data

    camera = np.stack([data.camera()] * 3, axis=-1)
    hog = FaceSettings(detector="dlib")
    assert FacesAnalyzer(build_engine(hog, state_dir), hog).analyze_pixels(camera) == {
        "tags": [],
        "faces": [],
    }
    cfg = FaceSettings(detector="dlib_cnn", upsample=0)
    cnn = FacesAnalyzer(build_engine(cfg, state_dir), cfg)
    faces = cnn.analyze_pixels(camera)["faces"]
    assert len(faces) == 1
    cx, cy = centre(faces[0]["box"])
    assert 0.35 < cx < 0.55 and 0.2 < cy < 0.45  # the photographer's head


@needs_dlib
def test_the_opencv_haar_detector_runs_offline_and_finds_the_astronaut(state_dir, photos):
    cfg = FaceSettings(detector="opencv", min_score=0.0)
    haar = FacesAnalyzer(build_engine(cfg, state_dir), cfg)
    faces = haar.analyze_pixels(photos["astronaut"])["faces"]
    assert len(faces) == 1 and faces[0]["detector"] == "opencv"


@needs_deepface
def test_the_deepface_engine_runs_dlib_offline_from_the_state_dir_weights(state_dir, photos):
    cfg = FaceSettings(engine="deepface", detector="opencv", min_score=0.0)
    engine = build_engine(cfg, state_dir)
    faces = FacesAnalyzer(engine, cfg).analyze_pixels(photos["astronaut"])["faces"]
    assert len(faces) == 1 and len(faces[0]["embedding"]) == 128
    assert type(engine).__name__ == "DeepFaceEngine"
    assert FacesAnalyzer(engine, cfg).analyze_pixels(np.full((300, 300, 3), 127, np.uint8)) == {
        "tags": [],
        "faces": [],
    }
