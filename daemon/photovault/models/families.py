"""What differs between CLIP-like model families, in one table.

A *family* says how a model's text is cleaned and padded and how its
similarities turn into tag confidences:

* ``clip`` (OpenAI / LAION CLIP, open_clip): CLIP BPE, padded with 0, causal
  text tower (so trailing padding can be cut), zero-shot scores are a softmax
  over the vocabulary of ``logit_scale * cosine`` (logit scale 100 for every
  released CLIP).
* ``xlm-roberta`` (Multilingual-CLIP, a text tower distilled to CLIP's text
  space): its own tokenizer with an attention mask; scored like CLIP.
* ``siglip``, ``siglip2``, ``nllb`` (NLLB-CLIP is trained with SigLIP's loss):
  sigmoid scores ``sigmoid(logit_scale * cosine + logit_bias)`` per tag, an
  absolute "does this tag fit" rather than "which tag fits best".

The manifest records the family and, where known, the model's own logit scale
and bias and thresholds (``extra.scoring``); what is missing comes from the
defaults here. ``scoring.basis`` says how far to trust the figures:
``measured`` (on photos here), ``published`` (the trained model's own figures,
from its checkpoint/config/card; models/data/hub_models.toml says where) or
``fallback`` (neither: defaults below). None of the sigmoid figures was measured
here (no SigLIP weights); the tags analyzer settings override all of them.

A sigmoid model's scale and bias are trained parameters (SigLIP starts from
scale 10, bias -10 and ends near scale 110-120, bias about -13), so with the
init values ``sigmoid(10 * cosine - 10)`` stays below 0.01 for every cosine a
real photo reaches. Without the trained figures the sigmoid families therefore
fall back to a cosine threshold (``SIGMOID_MATCH_COSINE``): the confidence
floor is the sigmoid at that cosine, so both floors agree and a tag is kept
when its cosine reaches it; confidences are then only comparable within the
model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

FAMILIES = ("clip", "xlm-roberta", "siglip", "siglip2", "nllb")
SIGMOID_FAMILIES = ("siglip", "siglip2", "nllb")
# How text is cleaned before tokenizing (see models/hf_tokenizer.py).
CLEAN = {
    "clip": "clip",
    "xlm-roberta": "whitespace",
    "siglip": "canonicalize",
    "siglip2": "canonicalize",
    "nllb": "whitespace",
}


@dataclass(frozen=True)
class Scoring:
    """How cosines become tag confidences, and the floors applied to them."""

    kind: str  # "softmax" (over the vocabulary) or "sigmoid" (per tag)
    logit_scale: float
    logit_bias: float  # 0 for softmax (a constant shift does not change it)
    tag_min_confidence: float
    tag_min_similarity: float
    source: str  # where the figures come from, shown by `models list`
    basis: str = "fallback"  # "measured", "published" or "fallback" (see the module text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BASES = ("measured", "published", "fallback")
# The cosine a matching SigLIP photo/text pair reaches: transformers' integration test
# for google/siglip-base-patch16-224 (= open_clip ViT-B-16-SigLIP webli) scores "a photo
# of 2 cats" on its two-cats image at logit -0.757 (sigmoid 0.32) and "2 dogs" at -10.34;
# with that model's scale and bias (hub_models.toml) these are cosines 0.104 and 0.022.
SIGMOID_MATCH_COSINE = 0.1
# With a model's trained scale and bias, the tag floor is an absolute probability:
# a clear match scores about 0.3 (above), an unrelated tag under 0.001.
SIGMOID_MIN_CONFIDENCE = 0.1
SIGMOID_MIN_SIMILARITY = 0.05


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


_DEFAULTS = {
    "softmax": Scoring(
        kind="softmax",
        logit_scale=100.0,
        logit_bias=0.0,
        tag_min_confidence=0.3,
        tag_min_similarity=0.2,
        source="CLIP defaults (logit scale 100 as released; floors measured on CLIP ViT-B-32)",
        basis="measured",
    ),
    # SigLIP's init values (open_clip init_logit_scale log(10), init_logit_bias -10),
    # used only to order tags; the floors are the cosine threshold (module text).
    "sigmoid": Scoring(
        kind="sigmoid",
        logit_scale=10.0,
        logit_bias=-10.0,
        tag_min_confidence=_sigmoid(10.0 * SIGMOID_MATCH_COSINE - 10.0),
        tag_min_similarity=SIGMOID_MATCH_COSINE,
        source=(
            f"fallback: this model's trained logit scale and bias are unknown; a tag is kept "
            f"when its cosine reaches {SIGMOID_MATCH_COSINE} (not measured here; set "
            "logit_scale and logit_bias in [analyzers.tags] for real probabilities)"
        ),
        basis="fallback",
    ),
}


def sigmoid_scoring(logit_scale: float, logit_bias: float, source: str, basis: str) -> Scoring:
    """A sigmoid model's scoring from its trained scale and bias: the tag floor is
    then an absolute probability (SIGMOID_MIN_CONFIDENCE)."""
    return Scoring(
        kind="sigmoid",
        logit_scale=float(logit_scale),
        logit_bias=float(logit_bias),
        tag_min_confidence=SIGMOID_MIN_CONFIDENCE,
        tag_min_similarity=SIGMOID_MIN_SIMILARITY,
        source=source,
        basis=basis,
    )


def scoring_kind(family: str) -> str:
    return "sigmoid" if family in SIGMOID_FAMILIES else "softmax"


def default_scoring(family: str) -> Scoring:
    return _DEFAULTS[scoring_kind(family)]


def _untrained(recorded: dict[str, Any]) -> bool:
    """A manifest written before scoring had a basis recorded SigLIP's init values
    (scale 10, bias -10, floor 0.5), which no photo reaches: not the model's own."""
    return (
        "basis" not in recorded
        and recorded.get("logit_scale") == 10.0
        and recorded.get("logit_bias") == -10.0
    )


def scoring_for(extra: dict[str, Any]) -> Scoring:
    """A manifest's scoring: its recorded figures over the family's defaults."""
    family = str(extra.get("family", "clip"))
    kind = scoring_kind(family)
    recorded = extra.get("scoring")
    if not isinstance(recorded, dict) or (kind == "sigmoid" and _untrained(recorded)):
        return default_scoring(family)
    figures = {
        key: float(recorded[key])
        for key in ("logit_scale", "logit_bias", "tag_min_confidence", "tag_min_similarity")
        if isinstance(recorded.get(key), (int, float))
    }
    basis = recorded.get("basis")
    source = recorded.get("source")
    if kind == "sigmoid" and {"logit_scale", "logit_bias"} <= set(figures):
        # Trained figures: the probability floor, unless the manifest gives its own.
        base = sigmoid_scoring(
            figures["logit_scale"],
            figures["logit_bias"],
            str(source) if isinstance(source, str) else "recorded in the manifest",
            str(basis) if basis in BASES else "published",
        )
    else:
        base = default_scoring(family)
    merged = {**base.to_dict(), **figures, "kind": kind}
    if isinstance(source, str):
        merged["source"] = source
    if basis in BASES:
        merged["basis"] = str(basis)
    return Scoring(**merged)
