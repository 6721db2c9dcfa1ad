"""CLIP image embeddings for semantic search (and the zero-shot `tags` analyzer).

The image tower maps a photo to a vector; the text tower maps a query to the
same space; search is a dot product. Embeddings are L2-normalised here, once,
so every consumer (index, tags, query) can use a plain dot product as cosine.

How the towers run (preprocessing, tokens, sessions) and what a CLIP manifest
must give (``manifest_problems``) live in ``models/clip.py``, where the
install-time checks use them too; this module is the analyzer around them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.models.clip import ClipModel, search_text_variant
from photovault.models.store import InstalledModel

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "model": None,  # installed CLIP model name; None = the first installed
    "variant": "fp32",  # a variant listed in the manifest (e.g. "int8")
    # The text tower's variant for searches; None = int8 on a CPU where installed
    # (models/clip.py, search_text_variant), else the variant above.
    "text_variant": None,
}


def find_model(context: AnalyzerContext, name: str | None) -> InstalledModel:
    """The named CLIP model, or the first installed one."""
    model = context.model_store.choose("clip", name, label="CLIP")
    if name is not None:
        context.model_store.verify(model.name)  # hashes, load, shapes: fail at start, named
    return model


class Clip(ClipModel, Analyzer):
    """Photo -> L2-normalised CLIP embedding; also encodes text queries
    (``ClipModel`` in ``models/clip.py`` runs the towers)."""

    name = "clip"
    version = "1"
    image_side = 288  # short side of a 4:3 photo ~216-224 px: the crop needs no upscaling

    def __init__(
        self, model: InstalledModel, variant: str, factory: Any, text_variant: str | None = None
    ) -> None:
        if text_variant is None:
            providers = list(getattr(factory, "providers", ["CPUExecutionProvider"]))
            text_variant = search_text_variant(model.manifest, variant, providers)
        super().__init__(model, variant, factory, text_variant)
        # The model is part of the version: another model (or variant) makes every
        # stored embedding stale, and the daemon re-embeds in the background.
        self.version = f"1+{model.manifest.name}.{variant}"

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        results: list[dict[str, Any] | AnalyzerError] = []
        good: list[np.ndarray] = []
        positions: list[int] = []
        for position, item in enumerate(items):
            pixels = item.image.pixels
            if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
                log.warning("clip skipped %s: pixels %s %s", item.path, pixels.dtype, pixels.shape)
                results.append(AnalyzerError(f"expected RGB uint8 pixels, got {pixels.shape}"))
                continue
            results.append(AnalyzerError("not run"))
            good.append(pixels)
            positions.append(position)
        if good:
            embeddings = self.embed_pixels(good)
            for row, position in enumerate(positions):
                results[position] = {
                    "model": self.model_name,
                    "embedding": [round(float(v), 6) for v in embeddings[row]],
                }
        return results

    def status(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "variant": self.variant,
            "loaded": self._image.loaded,
            "provider": self._image.provider,
            "text_variant": self.text_variant,
            "text_loaded": self.text_loaded,
        }


def _own_settings(settings: Any, key: str) -> dict[str, Any]:
    if settings is None:
        return {}
    if isinstance(settings, dict):
        return dict(settings)
    models = getattr(settings, "models", None)
    name = getattr(models, key, None)
    own = {} if name is None else {"model": name}
    variant = getattr(models, f"{key}_variant", None)
    if variant:
        own["variant"] = variant
    text_variant = getattr(models, f"{key}_text_variant", None)  # read where the config has it
    if text_variant:
        own["text_variant"] = text_variant
    return own


def create(settings: Any, context: AnalyzerContext) -> Clip:
    """Build the CLIP analyzer (settings: model, variant; or the daemon Settings)."""
    own = _own_settings(settings, "clip")
    unknown = sorted(set(own) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown clip setting(s): {', '.join(unknown)}")
    merged = {**DEFAULTS, **own}
    model = find_model(context, merged["model"])
    text_variant = merged["text_variant"]
    clip = Clip(
        model,
        str(merged["variant"]),
        context.session_factory,
        None if text_variant is None else str(text_variant),
    )
    # Warm for searches from the start and through idle unloads: at rest vaultd
    # holds this tower and nothing else of CLIP (bench/rss.py). A tower that fails
    # to load fails the searches (each says why), not the photos' embeddings.
    try:
        clip.keep_text_warm()
    except Exception as exc:
        log.warning("CLIP text tower of %s could not be loaded: %s", model.name, exc)
    return clip
