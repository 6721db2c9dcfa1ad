from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.tags import Vocabulary, ZeroShotTags, create
from photovault.media.types import DecodedImage, PhotoMetadata

REPO = Path(__file__).resolve().parents[3]

VOCAB = """
templates = ["a photo of {}."]
[[tag]]
tag = "Animals|Cat"
prompts = ["a cat"]
[[tag]]
tag = "Places|Beach"
prompts = ["a beach", "the sea"]
[[tag]]
tag = "Vehicles|Car"
prompts = ["a car"]
"""


def item(results: dict) -> AnalysisItem:
    image = DecodedImage(pixels=np.zeros((1, 1, 3), np.uint8), stored_size=(1, 1))
    return AnalysisItem(1, Path("/p/1.jpg"), "0" * 64, image, PhotoMetadata(), results)


@pytest.fixture
def tags(clip_context: AnalyzerContext, tmp_path: Path) -> ZeroShotTags:
    vocabulary = tmp_path / "tags.toml"
    vocabulary.write_text(VOCAB)
    return create({"vocabulary": str(vocabulary), "min_confidence": 0.0}, clip_context)


def test_the_packaged_vocabulary_is_the_example_in_config() -> None:
    packaged = REPO / "daemon/photovault/models/data/tags.toml"
    assert packaged.read_text() == (REPO / "config/tags.toml").read_text()
    assert len(Vocabulary.load(None).tags) >= 30


def test_prompts_are_put_into_every_template() -> None:
    vocabulary = Vocabulary.parse(VOCAB, "test")
    assert vocabulary.prompts[1] == ("a photo of a beach.", "a photo of the sea.")


def test_a_tag_listed_twice_is_refused() -> None:
    text = '[[tag]]\ntag = "A"\nprompts = ["a"]\n[[tag]]\ntag = "A"\nprompts = ["b"]\n'
    with pytest.raises(ValueError, match="listed twice"):
        Vocabulary.parse(text, "tags.toml")


def test_a_tag_without_prompts_is_refused_naming_the_file() -> None:
    with pytest.raises(ValueError, match=r"my\.toml: \[\[tag\]\] #1 needs tag and prompts"):
        Vocabulary.parse('[[tag]]\ntag = "A"\n', "my.toml")


def test_a_photo_whose_embedding_matches_a_tag_gets_that_tag_first(tags: ZeroShotTags) -> None:
    embedding = tags.text[1].tolist()  # exactly the "Places|Beach" text vector
    (result,) = tags.analyze([item({"clip": {"model": "tiny-clip", "embedding": embedding}})])
    assert result["tags"][0]["tag"] == "Places|Beach"
    assert result["tags"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert result["tags"][0]["source"] == "clip"


def test_tags_below_the_similarity_floor_are_left_out(tags: ZeroShotTags) -> None:
    # A vector orthogonal to every tag vector has similarity 0 with all of them.
    basis = np.linalg.svd(tags.text)[2]
    orthogonal = basis[-1].tolist()
    (result,) = tags.analyze([item({"clip": {"model": "tiny-clip", "embedding": orthogonal}})])
    assert result["tags"] == []


def test_a_photo_without_a_clip_embedding_fails_alone(tags: ZeroShotTags) -> None:
    (result,) = tags.analyze([item({})])
    assert isinstance(result, AnalyzerError)


def test_an_embedding_from_another_clip_model_is_refused(tags: ZeroShotTags) -> None:
    (result,) = tags.analyze([item({"clip": {"model": "other", "embedding": [0.0] * 8}})])
    assert isinstance(result, AnalyzerError)
    assert "other" in str(result)


def test_tags_requires_the_clip_analyzer(tags: ZeroShotTags) -> None:
    assert tags.requires == ("clip",)


class StubClip:
    """Just what ZeroShotTags reads from the clip analyzer: name, scoring, text tower."""

    model_name = "stub"

    def __init__(self, family: str, extra: dict | None = None) -> None:
        from photovault.models.families import scoring_for

        self.scoring = scoring_for({"family": family, **(extra or {})})

    def encode_text(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts[0]))
        out = rng.standard_normal((len(texts), 8)).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def close(self) -> None:
        pass


def stub_tags(family: str, settings: dict | None = None, extra: dict | None = None):
    merged = {"min_confidence": None, "min_similarity": None, "max_tags": 3}
    merged.update({"logit_scale": None, "logit_bias": None, **(settings or {})})
    return ZeroShotTags(StubClip(family, extra), Vocabulary.parse(VOCAB, "test"), merged)


def test_siglip_tags_score_each_tag_with_sigmoid_of_scale_and_bias() -> None:
    scoring = {"scoring": {"logit_scale": 20.0, "logit_bias": -5.0}}
    tags = stub_tags("siglip", extra=scoring)
    similarity = np.array([0.5, 0.1, -0.2])
    expected = 1 / (1 + np.exp(-(20.0 * similarity - 5.0)))
    np.testing.assert_allclose(tags.confidences(similarity), expected)
    # Each tag on its own: confidences do not sum to one as CLIP's softmax does.
    assert tags.confidences(similarity).sum() != pytest.approx(1.0)


def test_clip_tags_keep_the_softmax_over_the_vocabulary() -> None:
    tags = stub_tags("clip")
    probs = tags.confidences(np.array([0.3, 0.25, 0.1]))
    assert probs.sum() == pytest.approx(1.0)
    assert (tags.logit_scale, tags.min_similarity, tags.min_confidence) == (100.0, 0.2, 0.3)


def test_thresholds_come_from_the_manifest_and_settings_override_them() -> None:
    recorded = {"scoring": {"tag_min_similarity": 0.07, "tag_min_confidence": 0.6}}
    tags = stub_tags("siglip2", extra=recorded)
    assert (tags.scoring_kind, tags.min_similarity, tags.min_confidence) == ("sigmoid", 0.07, 0.6)
    tags = stub_tags("siglip2", {"min_similarity": 0.1}, extra=recorded)
    assert tags.min_similarity == 0.1


def test_a_siglip_photo_matching_a_tag_gets_it_with_a_sigmoid_confidence() -> None:
    tags = stub_tags("siglip", extra={"scoring": {"logit_scale": 10.0, "logit_bias": -2.0}})
    (result,) = tags.analyze([item({"clip": {"model": "stub", "embedding": tags.text[1]}})])
    best = result["tags"][0]
    assert best["tag"] == "Places|Beach"
    assert best["confidence"] == pytest.approx(1 / (1 + np.exp(-(10.0 - 2.0))), abs=1e-4)


def embedding_at(tags: ZeroShotTags, index: int, cosine: float) -> np.ndarray:
    """A unit photo embedding at exactly `cosine` to tag `index`'s text vector."""
    away = np.linalg.svd(tags.text)[2][-1]  # orthogonal to every tag vector
    return np.asarray(cosine * tags.text[index] + np.sqrt(1 - cosine**2) * away)


@pytest.mark.parametrize("family", ["siglip", "siglip2", "nllb"])
@pytest.mark.parametrize("cosine", [0.15, 0.2, 0.3])
def test_a_sigmoid_model_without_trained_figures_tags_a_photo_at_a_plausible_cosine(
    family: str, cosine: float
) -> None:
    tags = stub_tags(family)
    embedding = embedding_at(tags, 1, cosine)
    (result,) = tags.analyze([item({"clip": {"model": "stub", "embedding": embedding}})])
    assert result["tags"], f"no tag at cosine {cosine}"
    assert result["tags"][0]["tag"] == "Places|Beach"
    assert result["tags"][0]["similarity"] == pytest.approx(cosine, abs=1e-4)
    assert tags.scoring.basis == "fallback"


@pytest.mark.parametrize("family", ["siglip", "siglip2", "nllb"])
def test_a_sigmoid_model_without_trained_figures_leaves_an_unrelated_photo_untagged(
    family: str,
) -> None:
    tags = stub_tags(family)
    embedding = np.linalg.svd(tags.text)[2][-1]  # cosine 0 to every tag
    (result,) = tags.analyze([item({"clip": {"model": "stub", "embedding": embedding}})])
    assert result["tags"] == []


def test_a_siglip_model_with_its_published_figures_tags_a_match_and_not_an_unrelated_tag() -> None:
    published = {"logit_scale": 117.33, "logit_bias": -12.93, "basis": "published"}
    tags = stub_tags("siglip", extra={"scoring": published})
    assert (tags.min_confidence, tags.scoring.basis) == (0.1, "published")
    (match,) = tags.analyze(
        [item({"clip": {"model": "stub", "embedding": embedding_at(tags, 1, 0.15)}})]
    )
    assert match["tags"][0]["tag"] == "Places|Beach"
    assert match["tags"][0]["confidence"] > 0.9
    (weak,) = tags.analyze(
        [item({"clip": {"model": "stub", "embedding": embedding_at(tags, 1, 0.03)}})]
    )
    assert weak["tags"] == []


def test_a_manifest_that_recorded_siglips_untrained_init_values_scores_with_the_fallback() -> None:
    # Manifests written before the fix recorded scale 10, bias -10 and a 0.5 floor.
    old = {"logit_scale": 10.0, "logit_bias": -10.0, "tag_min_confidence": 0.5}
    tags = stub_tags("siglip", extra={"scoring": {**old, "tag_min_similarity": 0.05}})
    assert tags.scoring.basis == "fallback" and tags.min_confidence < 0.01
    (result,) = tags.analyze(
        [item({"clip": {"model": "stub", "embedding": embedding_at(tags, 1, 0.2)}})]
    )
    assert result["tags"][0]["tag"] == "Places|Beach"


def test_trained_figures_given_in_the_settings_bring_the_probability_floor() -> None:
    tags = stub_tags("siglip", {"logit_scale": 117.33, "logit_bias": -12.93})
    assert (tags.logit_scale, tags.logit_bias, tags.min_confidence) == (117.33, -12.93, 0.1)
