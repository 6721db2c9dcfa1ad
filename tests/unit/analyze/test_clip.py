from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.clip import create
from photovault.analyze.context import AnalyzerContext
from photovault.media.types import DecodedImage, PhotoMetadata
from photovault.models.session import SessionFactory
from photovault.models.store import ModelError, ModelStore


def item(pixels: np.ndarray) -> AnalysisItem:
    image = DecodedImage(pixels=pixels, stored_size=(pixels.shape[1], pixels.shape[0]))
    return AnalysisItem(1, Path("/p/1.jpg"), "0" * 64, image, PhotoMetadata())


def photo(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_a_photo_embedding_is_a_unit_vector_of_the_model_dimension(
    clip_context: AnalyzerContext,
) -> None:
    (result,) = create({}, clip_context).analyze([item(photo(0))])
    embedding = np.asarray(result["embedding"])
    assert embedding.shape == (8,)
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
    assert result["model"] == "tiny-clip"


def test_a_batch_gives_the_same_embeddings_as_photos_one_by_one(
    clip_context: AnalyzerContext,
) -> None:
    clip = create({}, clip_context)
    batch = clip.analyze([item(photo(1)), item(photo(2))])
    single = [clip.analyze([item(photo(1))])[0], clip.analyze([item(photo(2))])[0]]
    np.testing.assert_allclose(
        [r["embedding"] for r in batch], [r["embedding"] for r in single], atol=1e-5
    )


def test_text_queries_encode_to_unit_vectors(clip_context: AnalyzerContext) -> None:
    vectors = create({}, clip_context).encode_text(["a cat", "a beach at sunset"])
    assert vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def _token_table(model_dir: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_dir / "text.onnx")).graph
    return next(numpy_helper.to_array(t) for t in graph.initializer if t.name == "table")


@pytest.mark.parametrize("text_context", [77, None], ids=["fixed-length", "any-length"])
def test_a_text_tower_that_takes_any_length_gets_queries_cut_after_their_end_token(
    tiny_models: ModuleType, tmp_path: Path, text_context: int | None
) -> None:
    """The tiny text tower averages every token it is given, padding included, so
    its output shows how many tokens the analyzer sent."""
    from photovault.models.tokenizer import default_tokenizer

    src = tiny_models.build_clip_dir(tmp_path / "src", text_context=text_context)
    store = ModelStore(tmp_path / "models")
    store.import_dir(src)
    context = AnalyzerContext(tmp_path, store, SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))
    texts = ["a cat", "a beach at sunset with a red umbrella"]
    got = create({}, context).encode_text(texts, normalize=False)

    ids = default_tokenizer()(texts)
    kept = 77 if text_context else len(default_tokenizer().encode(texts[1])) + 2
    want = _token_table(src)[ids[:, :kept]].mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_no_tower_lets_its_threads_spin(
    clip_context: AnalyzerContext,
) -> None:
    clip = create({}, clip_context)
    clip.encode_text(["a cat"])
    clip.analyze([item(photo(0))])
    key = "session.intra_op.allow_spinning"
    text_options = clip._text.session().get_session_options()
    image_options = clip._image.session().get_session_options()
    # spinning threads would take the cores from the search after the encode
    assert text_options.get_session_config_entry(key) == "0"
    assert image_options.get_session_config_entry(key) == "0"


def test_a_photo_with_bad_pixels_fails_alone(clip_context: AnalyzerContext) -> None:
    good, bad = create({}, clip_context).analyze(
        [item(photo(0)), item(np.zeros((4, 4), dtype=np.uint8))]
    )
    assert isinstance(good, dict)
    assert isinstance(bad, AnalyzerError)


def test_the_daemon_settings_object_selects_the_model_by_models_clip(
    clip_context: AnalyzerContext,
) -> None:
    settings = SimpleNamespace(models=SimpleNamespace(clip="tiny-clip"))
    assert create(settings, clip_context).model_name == "tiny-clip"


def test_without_an_installed_clip_model_create_raises(tmp_path: Path) -> None:
    context = AnalyzerContext(
        tmp_path, ModelStore(tmp_path / "models"), SessionFactory(["CPUExecutionProvider"])
    )
    with pytest.raises(ModelError, match="no CLIP model installed"):
        create({}, context)


# -- memory at rest (issue #20, item 5) ------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _with_int8(tiny_models: ModuleType, folder: Path) -> Path:
    """A tiny CLIP folder with fp32 and int8 towers; the int8 text tower differs
    (another seed), so which one ran shows in the output."""
    from photovault.models.store import describe_file, validate_dir, write_manifest

    src = tiny_models.build_clip_dir(folder)
    tiny_models.build_image_encoder(src / "image.int8.onnx", dim=8, side=32)
    tiny_models.build_text_encoder(src / "text.int8.onnx", dim=8, seed=7)
    manifest = validate_dir(src, "clip")
    extra = (
        describe_file(src / "image.int8.onnx", "image", "int8"),
        describe_file(src / "text.int8.onnx", "text", "int8"),
    )
    write_manifest(src, dataclasses.replace(manifest, files=manifest.files + extra))
    return src


def _context(src: Path, tmp_path: Path, clock: Clock) -> AnalyzerContext:
    store = ModelStore(tmp_path / "models")
    store.import_dir(src)
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock)
    return AnalyzerContext(tmp_path, store, factory)


def test_the_text_tower_stays_warm_through_idle_unloads_and_the_image_tower_does_not(
    clip_context: AnalyzerContext, tmp_path: Path
) -> None:
    clock = Clock()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock)
    context = AnalyzerContext(tmp_path, clip_context.model_store, factory)
    clip = create({}, context)
    assert clip.text_loaded  # loaded at start: the first search does not wait
    (before,) = clip.analyze([item(photo(3))])
    query = clip.encode_text(["a cat"])
    clock.now += 3600
    assert factory.reap() == 1
    assert clip.status()["loaded"] is False
    assert clip.status()["text_loaded"] is True
    np.testing.assert_array_equal(clip.encode_text(["a cat"]), query)
    (after,) = clip.analyze([item(photo(3))])  # reloaded, same embedding
    assert after == before
    clip.close()
    assert not clip.text_loaded


def test_searches_run_the_int8_text_tower_on_a_cpu_whatever_the_image_variant(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    context = _context(_with_int8(tiny_models, tmp_path / "src"), tmp_path, Clock())
    clip = create({"variant": "fp32"}, context)
    assert (clip.variant, clip.text_variant) == ("fp32", "int8")
    assert clip.status()["text_variant"] == "int8"
    assert clip.version.endswith(".fp32")  # photos' embeddings are not made stale
    pinned = create({"variant": "fp32", "text_variant": "fp32"}, context)
    assert pinned.text_variant == "fp32"
    assert not np.allclose(clip.encode_text(["a cat"]), pinned.encode_text(["a cat"]))


def test_a_model_without_an_int8_text_tower_searches_with_its_own_variant(
    clip_context: AnalyzerContext,
) -> None:
    assert create({}, clip_context).text_variant == "fp32"


def test_zero_shot_tags_encode_their_labels_with_the_image_variant_not_the_search_one(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    """Tags are a softmax of ~100 x cosine: labels encoded by int8 could flip a tag, so
    the tags analyzer keeps the variant it always used while searches run int8."""
    from photovault.analyze.tags import create as create_tags

    context = _context(_with_int8(tiny_models, tmp_path / "src"), tmp_path, Clock())
    vocabulary = tmp_path / "tags.toml"
    vocabulary.write_text(
        'templates = ["a photo of {}."]\n[[tag]]\ntag = "Car"\nprompts = ["a car"]\n'
    )
    tags = create_tags({"vocabulary": str(vocabulary), "variant": "fp32"}, context)
    fp32 = create({"variant": "fp32", "text_variant": "fp32"}, context)
    int8 = create({"variant": "fp32"}, context)
    assert int8.text_variant == "int8"

    def label(clip: object) -> np.ndarray:
        v = clip.encode_text(["a photo of a car."]).mean(axis=0)  # type: ignore[attr-defined]
        return v / np.linalg.norm(v)

    np.testing.assert_allclose(tags.text[0], label(fp32), atol=1e-5)
    assert not np.allclose(tags.text[0], label(int8), atol=1e-5)


def test_a_text_tower_that_cannot_load_leaves_the_photos_embeddings_working(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    context = _context(_with_int8(tiny_models, tmp_path / "src"), tmp_path, Clock())
    installed = next((tmp_path / "models").glob("*/text.int8.onnx"), None)
    assert installed is not None, sorted((tmp_path / "models").rglob("*"))
    installed.write_bytes(b"not a model")
    clip = create({"variant": "fp32"}, context)
    (result,) = clip.analyze([item(photo(1))])
    assert isinstance(result, dict) and len(result["embedding"]) > 0
    with pytest.raises(Exception):  # noqa: B017 - the search says why; any load error
        clip.encode_text(["a cat"])
