"""CLIP image embeddings for semantic search (and the zero-shot `tags` analyzer).

The image tower maps a photo to a vector; the text tower maps a query to the
same space; search is a dot product. Embeddings are L2-normalised here, once,
so every consumer (index, tags, query) can use a plain dot product as cosine.

Preprocessing is CLIP's: resize the short side to the input size (bicubic),
center crop, ``(x/255 - mean) / std`` with the mean/std from the manifest.

``manifest_problems`` lists what this module needs from a CLIP manifest
(tokenizer, context length, resize rule); import and install refuse a model
that fails it, so a model that cannot run correctly here is never installed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.tagger import preprocess
from photovault.models.store import InstalledModel, Manifest, ModelError
from photovault.models.tokenizer import VOCAB_SIZE, default_tokenizer

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "model": None,  # installed CLIP model name; None = the first installed
    "variant": "fp32",  # a variant listed in the manifest (e.g. "int8")
}


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


# What encode_text and embed_pixels implement; a manifest asking for anything
# else would give silently wrong embeddings.
TOKENIZER = "clip-bpe"
RESIZE_MODES = ("shortest",)
INTERPOLATIONS = ("bicubic",)


def manifest_problems(manifest: Manifest) -> list[str]:
    """Why this analyzer could not run a CLIP model correctly (empty: it can).

    The store checks what is generic (files, hashes, shapes, both towers'
    width equal to embedding_dim); this adds what only CLIP needs.
    """
    out: list[str] = []
    extra = manifest.extra
    context = extra.get("context_length")
    if not isinstance(context, int) or context <= 0:
        out.append("extra.context_length must be a positive integer")
    if extra.get("tokenizer") != TOKENIZER:
        out.append(
            f"extra.tokenizer must be {TOKENIZER!r} (CLIP's BPE), got {extra.get('tokenizer')!r}"
        )
    if extra.get("vocab_size", VOCAB_SIZE) != VOCAB_SIZE:
        out.append(f"extra.vocab_size {extra['vocab_size']} differs from CLIP's {VOCAB_SIZE}")
    if extra.get("resize_mode", "shortest") not in RESIZE_MODES:
        out.append(f"resize_mode {extra['resize_mode']!r} is not supported")
    if extra.get("interpolation", "bicubic") not in INTERPOLATIONS:
        out.append(f"interpolation {extra['interpolation']!r} is not supported")
    for f in manifest.files:
        if f.role != "text" or not isinstance(context, int):
            continue
        for shape in f.inputs.values():
            # None: a text tower that takes any length up to the context (trimmed queries).
            if len(shape) == 2 and shape[1] not in (context, None):
                out.append(f"{f.path}: text input {shape} does not match context_length {context}")
    return out


def trim_length(ids: np.ndarray, eot: int) -> int:
    """Tokens a batch needs: up to and including the last row's end token."""
    return int(np.argmax(ids == eot, axis=1).max()) + 1


def find_model(context: AnalyzerContext, name: str | None) -> InstalledModel:
    """The named CLIP model, or the first installed one."""
    if name is None:
        installed = [m for m in context.model_store.list() if m.manifest.task == "clip"]
        if not installed:
            raise ModelError(f"no CLIP model installed in {context.model_store.root}")
        return installed[0]
    model = context.model_store.get(name, kind="clip")
    context.model_store.verify(model.name)  # hashes, load, shapes: fail at start, named
    return model


class Clip(Analyzer):
    """Photo -> L2-normalised CLIP embedding; also encodes text queries."""

    name = "clip"
    version = "1"
    image_side = 288  # short side of a 4:3 photo ~216-224 px: the crop needs no upscaling

    def __init__(self, model: InstalledModel, variant: str, factory: Any) -> None:
        manifest = model.manifest
        self.model_name = manifest.name
        self.variant = variant
        # The model is part of the version: another model (or variant) makes every
        # stored embedding stale, and the daemon re-embeds in the background.
        self.version = f"1+{manifest.name}.{variant}"
        self.dim = int(manifest.embedding_dim or 0)
        self.size = manifest.input_size
        self.mean = manifest.mean
        self.std = manifest.std
        self.crop_fraction = float(manifest.extra.get("crop_fraction", 1.0))
        self.context_length = int(manifest.extra.get("context_length", 77))
        gpu_only = manifest.extra.get("gpu_only_variants", [])
        providers = getattr(factory, "providers", ["CPUExecutionProvider"])
        if variant in gpu_only and providers[0] == "CPUExecutionProvider":
            # onnxruntime's CPU graph fusion crashes the process on fp16 CLIP
            # graphs (shared/MEASUREMENTS.md); refuse with a reason instead.
            raise ModelError(
                f"variant {variant} of {manifest.name} is for GPUs; on this CPU-only "
                "onnxruntime use fp32 or int8"
            )
        image = manifest.file_for("image", variant)
        text = manifest.file_for("text", variant)
        self._image_input = next(iter(image.inputs))
        self._text_input = next(iter(text.inputs))
        # A text tower exported with a dynamic length axis gets only the tokens up
        # to the last end token instead of 77 (models/export_clip.py explains why
        # that is exact); a fixed-length one (most imported models) gets all 77.
        self._text_trim = list(text.inputs[self._text_input])[1:] == [None]
        self._image = factory.managed(model.path / image.path, name=f"{manifest.name}:image")
        # Not `interactive` (spinning threads): after the encode the search
        # itself runs, and threads spinning on both cores made it 3x slower
        # (1M photos, 2 cores: encode + search 75 ms instead of 25).
        self._text = factory.managed(model.path / text.path, name=f"{manifest.name}:text")

    def embed_pixels(self, batch: list[np.ndarray], normalize: bool = True) -> np.ndarray:
        """Photos -> (N, dim) unit vectors (raw tower output with normalize=False,
        which install-time checks compare with open_clip's)."""
        x = np.stack(
            [preprocess(p, self.size, self.mean, self.std, self.crop_fraction) for p in batch]
        )
        (out,) = self._image.run({self._image_input: x})
        out = out.astype(np.float32)
        return l2_normalize(out) if normalize else out

    def encode_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """Queries -> (N, dim) unit vectors, comparable with photo embeddings."""
        tokenizer = default_tokenizer()
        ids = tokenizer(texts, self.context_length)
        if self._text_trim:
            ids = ids[:, : trim_length(ids, tokenizer.eot)]
        (out,) = self._text.run({self._text_input: ids})
        out = out.astype(np.float32)
        return l2_normalize(out) if normalize else out

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
        }

    def close(self) -> None:
        self._image.unload()
        self._text.unload()


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
    return own


def create(settings: Any, context: AnalyzerContext) -> Clip:
    """Build the CLIP analyzer (settings: model, variant; or the daemon Settings)."""
    own = _own_settings(settings, "clip")
    unknown = sorted(set(own) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown clip setting(s): {', '.join(unknown)}")
    merged = {**DEFAULTS, **own}
    model = find_model(context, merged["model"])
    return Clip(model, str(merged["variant"]), context.session_factory)
