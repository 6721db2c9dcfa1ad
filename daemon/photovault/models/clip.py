"""CLIP at run time: manifest rules, preprocessing, tokens and the two towers.

``ClipModel`` turns photos and queries into embeddings through onnxruntime
sessions; the analyzer in ``analyze/clip.py`` runs it on photos, and the
install-time checks (``models/install.py``, ``models/export/clip.py``) run the
very same code on a model before it is installed.

Preprocessing is CLIP's: resize the short side to the input size (bicubic),
center crop, ``(x/255 - mean) / std`` with the mean/std from the manifest.

``manifest_problems`` lists what ``ClipModel`` needs from a CLIP manifest
(tokenizer, context length, resize rule); import and install refuse a model
that fails it, so a model that cannot run correctly here is never installed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from photovault.models.families import CLEAN, FAMILIES, Scoring, scoring_for
from photovault.models.preprocess import RESAMPLING, preprocess
from photovault.models.store import TEXT_MASK_INPUT, InstalledModel, Manifest, ModelError
from photovault.models.tokenizer import VOCAB_SIZE, default_tokenizer


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


# What encode_text and embed_pixels implement; a manifest asking for anything
# else would give silently wrong embeddings.
TOKENIZER = "clip-bpe"
HF_TOKENIZER = "hf"  # the model's own tokenizer.json (models/hf_tokenizer.py)
RESIZE_MODES = ("shortest", "squash")
INTERPOLATIONS = tuple(RESAMPLING)
TEXT_DTYPES = {"int64": np.int64, "int32": np.int32}


def manifest_problems(manifest: Manifest) -> list[str]:
    """Why ``ClipModel`` could not run a CLIP model correctly (empty: it can).

    The store checks what is generic (files, hashes, shapes, both towers'
    width equal to embedding_dim); this adds what only CLIP needs.
    """
    out: list[str] = []
    extra = manifest.extra
    context = extra.get("context_length")
    if not isinstance(context, int) or context <= 0:
        out.append("extra.context_length must be a positive integer")
    tokenizer = extra.get("tokenizer")
    if tokenizer == HF_TOKENIZER:
        tokenizer_file = extra.get("tokenizer_file")
        if tokenizer_file not in extra.get("data_files", []):
            out.append("extra.tokenizer_file must name one of extra.data_files")
        if not isinstance(extra.get("pad_id"), int):
            out.append("extra.pad_id must be an integer")
    elif tokenizer != TOKENIZER:
        out.append(
            f"extra.tokenizer must be {TOKENIZER!r} (CLIP's BPE) or {HF_TOKENIZER!r} "
            f"(a tokenizer.json), got {tokenizer!r}"
        )
    elif extra.get("vocab_size", VOCAB_SIZE) != VOCAB_SIZE:
        out.append(f"extra.vocab_size {extra['vocab_size']} differs from CLIP's {VOCAB_SIZE}")
    if extra.get("family", "clip") not in FAMILIES:
        out.append(f"extra.family {extra['family']!r} must be one of {', '.join(FAMILIES)}")
    if extra.get("text_input_dtype", "int64") not in TEXT_DTYPES:
        out.append(f"extra.text_input_dtype {extra['text_input_dtype']!r} is not supported")
    if extra.get("resize_mode", "shortest") not in RESIZE_MODES:
        out.append(f"resize_mode {extra['resize_mode']!r} is not supported")
    if extra.get("interpolation", "bicubic") not in INTERPOLATIONS:
        out.append(f"interpolation {extra['interpolation']!r} is not supported")
    for f in manifest.files:
        if f.role != "text" or not isinstance(context, int):
            continue
        for shape in f.inputs.values():  # ids (and attention mask)
            # None: a text tower that takes any length up to the context (trimmed queries).
            if len(shape) == 2 and shape[1] not in (context, None):
                out.append(f"{f.path}: text input {shape} does not match context_length {context}")
    return out


#: The text tower searches run on a CPU when the model has it: int8 (MatMul only)
#: holds ~140 MB against fp32's ~250 MB, encodes a query 2.4x faster, and its
#: query vectors keep cosine >= 0.998 to fp32's (shared/MEASUREMENTS.md). It stays
#: loaded at rest, so what it holds is what vaultd holds while idle.
CPU_TEXT_VARIANT = "int8"


def search_text_variant(manifest: Manifest, variant: str, providers: list[str]) -> str:
    """The text tower's variant for a model whose image tower runs `variant`: the
    int8 one on a CPU where it is installed, else `variant` itself."""
    if not providers or providers[0] != "CPUExecutionProvider":
        return variant
    has = any(f.role == "text" and f.variant == CPU_TEXT_VARIANT for f in manifest.files)
    return CPU_TEXT_VARIANT if has else variant


def trim_length(ids: np.ndarray, eot: int) -> int:
    """Tokens a batch needs: up to and including the last row's end token."""
    return int(np.argmax(ids == eot, axis=1).max()) + 1


class ClipModel:
    """A CLIP model's image and text towers: photos and queries -> embeddings.

    ``text_variant``: the text tower's variant when it differs from the image
    tower's (``search_text_variant``); by default both run ``variant``."""

    def __init__(
        self, model: InstalledModel, variant: str, factory: Any, text_variant: str | None = None
    ) -> None:
        manifest = model.manifest
        self.model_name = manifest.name
        self.variant = variant
        self.text_variant = text_variant or variant
        self.dim = int(manifest.embedding_dim or 0)
        self.size = manifest.input_size
        self.mean = manifest.mean
        self.std = manifest.std
        self.crop_fraction = float(manifest.extra.get("crop_fraction", 1.0))
        self.context_length = int(manifest.extra.get("context_length", 77))
        gpu_only = manifest.extra.get("gpu_only_variants", [])
        providers = getattr(factory, "providers", ["CPUExecutionProvider"])
        if {variant, self.text_variant} & set(gpu_only) and providers[0] == "CPUExecutionProvider":
            # onnxruntime's CPU graph fusion crashes the process on fp16 CLIP
            # graphs (shared/MEASUREMENTS.md); refuse with a reason instead.
            raise ModelError(
                f"variant {variant} of {manifest.name} is for GPUs; on this CPU-only "
                "onnxruntime use fp32 or int8"
            )
        extra = manifest.extra
        self.family = str(extra.get("family", "clip"))
        self.scoring: Scoring = scoring_for(extra)
        self.resize_mode = str(extra.get("resize_mode", "shortest"))
        self.interpolation = str(extra.get("interpolation", "bicubic"))
        image = manifest.file_for("image", variant)
        text = manifest.file_for("text", self.text_variant)
        self._image_input = next(iter(image.inputs))
        self._text_input = next(n for n in text.inputs if n != TEXT_MASK_INPUT)
        self._text_mask = TEXT_MASK_INPUT in text.inputs and len(text.inputs) == 2
        self._text_dtype = TEXT_DTYPES[str(extra.get("text_input_dtype", "int64"))]
        # Towers exported with a fixed batch of 1 (Immich's) are run one item at a time.
        self._image_one = image.inputs[self._image_input][0] == 1
        self._text_one = text.inputs[self._text_input][0] == 1
        # A text tower exported with a dynamic length axis gets only the tokens up
        # to the last end token instead of 77 (models/export/clip.py explains why
        # that is exact for CLIP's causal text tower); a fixed-length one (most
        # imported models) gets all 77.
        self._text_trim = (
            list(text.inputs[self._text_input])[1:] == [None]
            and self.family == "clip"
            and not self._text_mask
        )
        # The model's own tokenizer.json, loaded on the first query (a multilingual
        # vocabulary is tens of MB) and dropped again by close().
        self._hf: Any = None
        self._hf_args: tuple[Any, ...] | None = None
        self._eot = -1
        if extra.get("tokenizer") == "hf":
            self._hf_args = (
                model.path / str(extra["tokenizer_file"]),
                self.context_length,
                int(extra["pad_id"]),
                str(extra.get("clean") or CLEAN.get(self.family, "whitespace")),
            )
            eos = extra.get("eos_id")
            self._eot = int(eos) if isinstance(eos, int) else -1
            self._text_trim = self._text_trim and self._eot >= 0
        self._image = factory.managed(model.path / image.path, name=f"{manifest.name}:image")
        # Not `interactive` (spinning threads): after the encode the search
        # itself runs, and threads spinning on both cores made it 3x slower
        # (1M photos, 2 cores: encode + search 75 ms instead of 25).
        self._text = factory.managed(model.path / text.path, name=f"{manifest.name}:text")

    def _run(self, tower: Any, feeds: dict[str, np.ndarray], one_at_a_time: bool) -> np.ndarray:
        if not one_at_a_time:
            (out,) = tower.run(feeds)
            return np.asarray(out, dtype=np.float32)
        rows = len(next(iter(feeds.values())))
        parts = [tower.run({k: v[i : i + 1] for k, v in feeds.items()})[0] for i in range(rows)]
        return np.concatenate(parts).astype(np.float32)

    def embed_pixels(self, batch: list[np.ndarray], normalize: bool = True) -> np.ndarray:
        """Photos -> (N, dim) unit vectors (raw tower output with normalize=False,
        which install-time checks compare with open_clip's)."""
        x = np.stack(
            [
                preprocess(
                    p,
                    self.size,
                    self.mean,
                    self.std,
                    self.crop_fraction,
                    self.resize_mode,
                    self.interpolation,
                )
                for p in batch
            ]
        )
        out = self._run(self._image, {self._image_input: x}, self._image_one)
        return l2_normalize(out) if normalize else out

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Texts -> (ids, attention mask or None) as the text tower takes them."""
        if self._hf_args is not None:
            if self._hf is None:
                from photovault.models.hf_tokenizer import HFTokenizer

                self._hf = HFTokenizer(*self._hf_args)
            ids, mask = self._hf.batch(texts)
            eot = self._eot
        else:
            builtin = default_tokenizer()
            ids, mask, eot = builtin(texts, self.context_length), None, builtin.eot
        if self._text_trim:
            ids = ids[:, : trim_length(ids, eot)]
        return ids, mask

    def encode_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """Queries -> (N, dim) unit vectors, comparable with photo embeddings."""
        ids, mask = self.tokenize(texts)
        feeds = {self._text_input: ids.astype(self._text_dtype)}
        if self._text_mask:
            if mask is None:
                mask = (ids != 0).astype(np.int64)
            feeds[TEXT_MASK_INPUT] = mask.astype(self._text_dtype)
        out = self._run(self._text, feeds, self._text_one)
        return l2_normalize(out) if normalize else out

    def keep_text_warm(self) -> None:
        """Load the text tower now and keep it through idle unloads (``close()``
        still drops it): a search never waits for it to load (0.3-0.9 s)."""
        self._text.idle_ttl_s = math.inf
        self._text.session()

    @property
    def text_loaded(self) -> bool:
        return bool(self._text.loaded)

    def close(self) -> None:
        self._image.unload()
        self._text.unload()
        self._hf = None
