"""Zero-shot tags from the CLIP embedding against a vocabulary (tags.toml).

Why: the ImageNet tagger only knows 1000 object classes; scenes and events
("Beach", "Wedding", "Screenshot") are what people search for, and CLIP can
score any phrase. Each tag's prompts are put into each template, encoded by
the text tower, averaged and normalised once at start; per photo this is
one small matrix product on the embedding the `clip` analyzer already made.

Confidence depends on the model family (``models/families.py``, recorded in
the model's manifest as ``extra.scoring``):

* CLIP (and Multilingual-CLIP): the zero-shot probability, a softmax over the
  vocabulary of ``logit_scale * cosine``. It says "this tag fits best among
  these", not "this is certainly a beach"; hence both a probability and a
  raw-cosine floor (0.2 for CLIP; unrelated photo/text pairs score about
  0.1-0.18).
* SigLIP, SigLIP2, NLLB-CLIP: ``sigmoid(logit_scale * cosine + logit_bias)``
  per tag, as these models were trained; each tag stands on its own. Where the
  model's trained scale and bias are unknown, a cosine threshold decides
  (``models/families.py``); giving both here restores real probabilities.

Settings given here override the manifest's figures.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.clip import Clip, find_model
from photovault.analyze.context import AnalyzerContext
from photovault.models.clip import l2_normalize
from photovault.models.families import sigmoid_scoring

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "model": None,  # CLIP model (must be the one the clip analyzer uses)
    "variant": "fp32",
    "vocabulary": None,  # path to a tags.toml; None = <state_dir>/tags.toml, else packaged
    # None: the model's own figures (manifest extra.scoring, else its family's defaults)
    "min_confidence": None,
    "min_similarity": None,
    "max_tags": 3,
    "logit_scale": None,
    "logit_bias": None,
}


@dataclass(frozen=True)
class Vocabulary:
    tags: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]  # per tag, already put into the templates

    @classmethod
    def parse(cls, text: str, where: str) -> Vocabulary:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        templates = data.get("templates", ["{}"])
        if not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
            raise ValueError(f"{where}: templates must be strings containing {{}}")
        entries = data.get("tag", [])
        if not entries:
            raise ValueError(f"{where}: no [[tag]] entries")
        tags: list[str] = []
        prompts: list[tuple[str, ...]] = []
        for number, entry in enumerate(entries, 1):
            tag, phrases = entry.get("tag"), entry.get("prompts")
            if not isinstance(tag, str) or not tag or not phrases:
                raise ValueError(f"{where}: [[tag]] #{number} needs tag and prompts")
            if tag in tags:
                raise ValueError(f"{where}: tag {tag!r} listed twice")
            tags.append(tag)
            prompts.append(tuple(t.format(p) for p in phrases for t in templates))
        return cls(tuple(tags), tuple(prompts))

    @classmethod
    def load(cls, path: Path | None) -> Vocabulary:
        if path is not None:
            return cls.parse(Path(path).read_text(encoding="utf-8"), str(path))
        packaged = resources.files("photovault.models").joinpath("data/tags.toml")
        return cls.parse(packaged.read_text(encoding="utf-8"), "packaged tags.toml")


class ZeroShotTags(Analyzer):
    name = "tags"
    version = "1"
    image_side = 0  # reads the clip embedding, needs no pixels
    requires = ("clip",)

    def __init__(self, clip: Clip, vocabulary: Vocabulary, settings: dict[str, Any]) -> None:
        self.vocabulary = vocabulary
        self.model_name = clip.model_name
        scoring = clip.scoring
        if (
            scoring.kind == "sigmoid"
            and scoring.basis == "fallback"
            and settings.get("logit_scale") is not None
            and settings.get("logit_bias") is not None
        ):
            # The trained figures given here: their probability floor, not the fallback's.
            scoring = sigmoid_scoring(
                float(settings["logit_scale"]),
                float(settings["logit_bias"]),
                "settings",
                "published",
            )

        def pick(key: str, default: float) -> float:
            value = settings.get(key)
            return float(default if value is None else value)

        self.scoring = scoring
        self.scoring_kind = scoring.kind
        self.min_confidence = pick("min_confidence", scoring.tag_min_confidence)
        self.min_similarity = pick("min_similarity", scoring.tag_min_similarity)
        self.max_tags = int(settings["max_tags"])
        self.logit_scale = pick("logit_scale", scoring.logit_scale)
        self.logit_bias = pick("logit_bias", scoring.logit_bias)
        rows = []
        for prompts in vocabulary.prompts:
            rows.append(l2_normalize(clip.encode_text(list(prompts)).mean(axis=0, keepdims=True)))
        self.text = np.concatenate(rows).astype(np.float32)  # (tags, dim)
        clip.close()  # the text tower is not needed again until a reload
        log.info("tags: %d tags encoded with %s", len(vocabulary.tags), clip.model_name)

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        return [self._one(item) for item in items]

    def _one(self, item: AnalysisItem) -> dict[str, Any] | AnalyzerError:
        clip = item.results.get("clip")
        if not isinstance(clip, dict) or "embedding" not in clip:
            return AnalyzerError("no clip embedding for this photo")
        if clip.get("model") != self.model_name:
            return AnalyzerError(f"clip embedding from {clip.get('model')}, need {self.model_name}")
        embedding = np.asarray(clip["embedding"], dtype=np.float32)
        if embedding.shape != (self.text.shape[1],):
            return AnalyzerError(f"clip embedding has shape {embedding.shape}")
        similarity = self.text @ embedding
        probs = self.confidences(similarity)
        order = np.argsort(-probs)[: self.max_tags]
        tags = [
            {
                "tag": self.vocabulary.tags[i],
                "confidence": round(float(probs[i]), 4),
                "similarity": round(float(similarity[i]), 4),
                "source": "clip",
            }
            for i in order
            if probs[i] >= self.min_confidence and similarity[i] >= self.min_similarity
        ]
        return {"model": self.model_name, "tags": tags}

    def confidences(self, similarity: np.ndarray) -> np.ndarray:
        """Cosines to every tag -> confidences, as the model family scores them."""
        logits = self.logit_scale * similarity.astype(np.float64) + self.logit_bias
        if self.scoring_kind == "sigmoid":
            return np.asarray(1.0 / (1.0 + np.exp(-logits)))
        probs = np.exp(logits - logits.max())
        return np.asarray(probs / probs.sum())


def create(settings: Any, context: AnalyzerContext) -> ZeroShotTags:
    """Build the zero-shot tagger; encodes the vocabulary once with the CLIP text tower."""
    own = dict(settings) if isinstance(settings, dict) else {}
    if not isinstance(settings, dict) and settings is not None:
        name = getattr(getattr(settings, "models", None), "clip", None)
        own = {} if name is None else {"model": name}
    unknown = sorted(set(own) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown tags setting(s): {', '.join(unknown)}")
    merged = {**DEFAULTS, **own}
    path = merged["vocabulary"]
    if path is None and (context.state_dir / "tags.toml").is_file():
        path = context.state_dir / "tags.toml"
    vocabulary = Vocabulary.load(Path(path) if path is not None else None)
    variant = str(merged["variant"])
    # The label vectors come from the same text tower variant as always (encoded once:
    # speed does not matter), not the int8 one searches use on a CPU: tags are a
    # softmax of ~100 x cosine, where int8's small shift could flip a tag.
    clip = Clip(find_model(context, merged["model"]), variant, context.session_factory, variant)
    return ZeroShotTags(clip, vocabulary, merged)
