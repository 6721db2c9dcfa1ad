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
defaults here. Threshold defaults for the sigmoid families are first guesses,
not measured on real photos (no SigLIP weights here): the manifest says so in
``scoring.source`` and the tags analyzer settings override them.
"""

from __future__ import annotations

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DEFAULTS = {
    "softmax": Scoring(
        kind="softmax",
        logit_scale=100.0,
        logit_bias=0.0,
        tag_min_confidence=0.3,
        tag_min_similarity=0.2,
        source="CLIP defaults (logit scale 100 as released; floors measured on CLIP ViT-B-32)",
    ),
    # SigLIP's init values (open_clip init_logit_scale log(10), init_logit_bias -10)
    # are replaced by the trained ones where the manifest records them.
    "sigmoid": Scoring(
        kind="sigmoid",
        logit_scale=10.0,
        logit_bias=-10.0,
        tag_min_confidence=0.5,
        tag_min_similarity=0.05,
        source="SigLIP defaults (untrained init values; not measured, override in settings)",
    ),
}


def scoring_kind(family: str) -> str:
    return "sigmoid" if family in SIGMOID_FAMILIES else "softmax"


def default_scoring(family: str) -> Scoring:
    return _DEFAULTS[scoring_kind(family)]


def scoring_for(extra: dict[str, Any]) -> Scoring:
    """A manifest's scoring: its recorded figures over the family's defaults."""
    family = str(extra.get("family", "clip"))
    base = default_scoring(family).to_dict()
    recorded = extra.get("scoring")
    if isinstance(recorded, dict):
        for key in ("logit_scale", "logit_bias", "tag_min_confidence", "tag_min_similarity"):
            if isinstance(recorded.get(key), (int, float)):
                base[key] = float(recorded[key])
        if isinstance(recorded.get("source"), str):
            base["source"] = recorded["source"]
    base["kind"] = scoring_kind(family)
    return Scoring(**base)
