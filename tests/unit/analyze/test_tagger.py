from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.tagger import create, preprocess, softmax
from photovault.media.types import DecodedImage, PhotoMetadata
from photovault.models.imagenet import class_tags
from photovault.models.session import SessionFactory
from photovault.models.store import Manifest, ModelError, ModelStore, describe_file, write_manifest


def item(pixels: np.ndarray, file_id: int = 1) -> AnalysisItem:
    return AnalysisItem(
        file_id=file_id,
        path=Path(f"/photos/{file_id}.jpg"),
        sha256="0" * 64,
        image=DecodedImage(pixels=pixels, stored_size=(pixels.shape[1], pixels.shape[0])),
        metadata=PhotoMetadata(),
    )


@pytest.fixture
def context(tiny_models: ModuleType, tmp_path: Path) -> AnalyzerContext:
    """A store with a tiny 1000-class 'tagger' (random linear map of colour)."""
    src = tmp_path / "src"
    tiny_models.build_classifier(src / "model.onnx", num_classes=1000, side=224)
    write_manifest(
        src,
        Manifest(
            name="efficientnet-lite0",
            task="tagger",
            architecture="tiny",
            input_size=224,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            files=(describe_file(src / "model.onnx", "image", "fp32"),),
            num_classes=1000,
        ),
    )
    store = ModelStore(tmp_path / "models")
    store.import_dir(src)
    return AnalyzerContext(tmp_path, store, SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))


def photo(seed: int = 0, shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def test_preprocess_gives_a_normalised_chw_float_array() -> None:
    grey = np.full((300, 400, 3), 255, dtype=np.uint8)
    x = preprocess(grey, 224, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (3, 224, 224)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, 2.0, atol=1e-5)


def test_preprocess_crops_the_centre_of_the_short_side() -> None:
    pixels = np.full((200, 400, 3), 255, dtype=np.uint8)
    pixels[:, 100:300] = 0  # a black square in the middle, white sides
    x = preprocess(pixels, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert float(x.max()) < 0.05


def test_preprocess_refuses_pixels_that_are_not_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess(np.zeros((10, 10), dtype=np.uint8), 224, (0, 0, 0), (1, 1, 1))


def test_analyze_returns_top_five_labels_with_synsets_in_score_order(
    context: AnalyzerContext,
) -> None:
    (result,) = create({}, context).analyze([item(photo())])
    assert isinstance(result, dict)
    labels = result["labels"]
    assert len(labels) == 5
    assert all(label["synset"].startswith("n") and len(label["synset"]) == 9 for label in labels)
    scores = [label["score"] for label in labels]
    assert scores == sorted(scores, reverse=True)


def test_tag_confidence_is_the_summed_probability_of_its_classes(
    context: AnalyzerContext,
) -> None:
    tagger = create({"min_confidence": 0.0, "max_tags": 100}, context)
    pixels = photo(3)
    (result,) = tagger.analyze([item(pixels)])
    x = preprocess(pixels, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))[None]
    (logits,) = tagger._model.run({"pixels": x})
    probs = softmax(logits)[0]
    tags = class_tags()
    dog = sum(float(p) for p, t in zip(probs, tags, strict=True) if t == "Animals|Dog")
    got = {t["tag"]: t["confidence"] for t in result["tags"]}
    assert got["Animals|Dog"] == pytest.approx(dog, abs=1e-4)
    assert all(t["source"] == "tagger" for t in result["tags"])


def test_tags_below_min_confidence_are_left_out(context: AnalyzerContext) -> None:
    (result,) = create({"min_confidence": 1.01}, context).analyze([item(photo())])
    assert result["tags"] == []


def test_a_photo_that_cannot_be_preprocessed_fails_alone(context: AnalyzerContext) -> None:
    bad = item(np.zeros((10, 10), dtype=np.uint8), file_id=2)
    good, failed = create({}, context).analyze([item(photo()), bad])
    assert isinstance(good, dict)
    assert isinstance(failed, AnalyzerError)


def test_results_of_a_batch_match_results_one_by_one(context: AnalyzerContext) -> None:
    tagger = create({}, context)
    batch = tagger.analyze([item(photo(1)), item(photo(2))])
    single = [tagger.analyze([item(photo(1))])[0], tagger.analyze([item(photo(2))])[0]]
    assert [r["labels"][0]["synset"] for r in batch] == [r["labels"][0]["synset"] for r in single]


def test_unknown_settings_are_refused(context: AnalyzerContext) -> None:
    with pytest.raises(ValueError, match=r"unknown tagger setting.*colour"):
        create({"colour": "blue"}, context)


def test_a_model_that_is_not_installed_raises_with_the_install_command(tmp_path: Path) -> None:
    context = AnalyzerContext(
        tmp_path, ModelStore(tmp_path / "models"), SessionFactory(["CPUExecutionProvider"])
    )
    with pytest.raises(ModelError, match="vaultctl models install tagger efficientnet-lite0"):
        create({"model": "efficientnet-lite0"}, context)


def test_a_variant_the_model_lacks_is_refused(context: AnalyzerContext) -> None:
    with pytest.raises(ModelError, match="no image file in variant 'int8'"):
        create({"variant": "int8"}, context)


def test_status_reports_the_provider_once_loaded(context: AnalyzerContext) -> None:
    tagger = create({}, context)
    assert tagger.status()["loaded"] is False
    tagger.analyze([item(photo())])
    assert tagger.status()["provider"] == "CPUExecutionProvider"
    tagger.close()
    assert tagger.status()["loaded"] is False


def test_without_a_model_name_the_first_installed_tagger_is_used(
    context: AnalyzerContext,
) -> None:
    assert create(None, context).model_name == "efficientnet-lite0"


def test_the_daemon_settings_object_selects_the_model_by_models_tagger(
    context: AnalyzerContext,
) -> None:
    settings = SimpleNamespace(models=SimpleNamespace(tagger="efficientnet-lite0"))
    assert create(settings, context).model_name == "efficientnet-lite0"


def test_an_empty_store_says_how_to_install_a_tagger(tmp_path: Path) -> None:
    context = AnalyzerContext(
        tmp_path, ModelStore(tmp_path / "models"), SessionFactory(["CPUExecutionProvider"])
    )
    with pytest.raises(ModelError, match="no tagger model installed"):
        create(None, context)
