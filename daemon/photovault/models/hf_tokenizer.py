"""Text -> token ids with a model's own ``tokenizer.json`` (Hugging Face ``tokenizers``).

Models from the hub ship their tokenizer as a ``tokenizer.json``: CLIP's BPE,
XLM-RoBERTa's and NLLB's SentencePiece unigram, Gemma's (SigLIP2) BPE. The
``tokenizers`` library (Rust, no torch) runs any of them; this module adds
what the family needs around it (``models/families.py``):

* cleaning: CLIP's (NFC, HTML entities, whitespace, lower case; the same
  function as ``models/tokenizer.py``, so ids equal ours), SigLIP's
  "canonicalize" (open_clip's, step for step: underscores to spaces,
  punctuation removed, lower case, whitespace collapsed),
  or whitespace only;
* truncation to the context length (special tokens included, so a long CLIP
  text still ends with its end token) and padding to it with the family's
  pad id (0 for CLIP as open_clip does; the tokenizer's pad token otherwise);
* the attention mask, for text towers that take one (Multilingual-CLIP).
"""

from __future__ import annotations

import html
import json
import string
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as _HF

from photovault.models.tokenizer import Tokenizer as ClipBpe

CLEAN_MODES = ("clip", "canonicalize", "whitespace")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def clean(text: str, mode: str) -> str:
    if mode == "clip":
        return ClipBpe.clean(text)
    if mode == "canonicalize":
        return canonicalize(text)
    return " ".join(text.split())


def canonicalize(text: str) -> str:
    """open_clip's ``canonicalize`` cleaning (``canonicalize_text(basic_clean(text))``,
    from big_vision), step for step: NFC and HTML entities (its ``basic_clean``, with
    NFC for ftfy as in our CLIP cleaning), underscores to spaces, ASCII punctuation
    removed, lower case, runs of whitespace to one space."""
    text = unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text)).strip()
    text = text.replace("_", " ")
    text = text.translate(_PUNCTUATION)
    text = text.lower()
    return " ".join(text.split())


class HFTokenizer:
    """Texts -> int64 ids (N, context_length) and their attention mask."""

    def __init__(
        self, path: Path, context_length: int, pad_id: int, clean_mode: str = "whitespace"
    ) -> None:
        if clean_mode not in CLEAN_MODES:
            raise ValueError(f"unknown clean mode {clean_mode!r}")
        self.context_length = int(context_length)
        self.pad_id = int(pad_id)
        self.clean_mode = clean_mode
        self._tok = _HF.from_file(str(path))
        self._plain = _HF.from_file(str(path))  # no truncation or padding: encode()
        self._plain.no_truncation()
        self._plain.no_padding()
        pad_token = self._tok.id_to_token(self.pad_id) or ""
        self._tok.enable_truncation(max_length=self.context_length)
        self._tok.enable_padding(
            length=self.context_length, pad_id=self.pad_id, pad_token=pad_token
        )

    def encode(self, text: str) -> list[int]:
        """Ids of one text without special tokens, truncation or padding."""
        cleaned = clean(text, self.clean_mode)
        ids: list[int] = self._plain.encode(cleaned, add_special_tokens=False).ids
        return ids

    def batch(self, texts: str | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention_mask), both int64 (N, context_length)."""
        if isinstance(texts, str):
            texts = [texts]
        encodings = self._tok.encode_batch([clean(t, self.clean_mode) for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask.reshape(ids.shape)

    def __call__(self, texts: str | list[str]) -> np.ndarray:
        return self.batch(texts)[0]

    def token_id(self, token: str) -> int | None:
        found: int | None = self._tok.token_to_id(token)
        return found


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json write it
    (a string, or an object with its content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def describe(
    tokenizer_json: Path,
    family: str,
    tokenizer_config: dict[str, Any] | None = None,
    special_tokens_map: dict[str, Any] | None = None,
    clean_mode: str = "whitespace",
) -> dict[str, Any]:
    """Manifest facts of a tokenizer.json for a family: model type, vocabulary
    size, pad token and id, end token id; raises ValueError if it cannot load."""
    try:
        tok = _HF.from_file(str(tokenizer_json))
    except Exception as exc:  # the Rust side raises a bare Exception
        raise ValueError(f"{tokenizer_json}: not a tokenizer.json: {exc}") from exc
    model_type = str(json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["type"])
    configs = [tokenizer_config or {}, special_tokens_map or {}]
    pad_token = next(
        (t for c in configs if (t := _token_text(c.get("pad_token"))) is not None), None
    )
    eos_token = next(
        (t for c in configs if (t := _token_text(c.get("eos_token"))) is not None), None
    )
    if family == "clip":
        pad_id = 0  # open_clip pads CLIP with 0 (the text tower never looks past the end)
    else:
        found = tok.token_to_id(pad_token) if pad_token else None
        if found is None:
            padding = tok.padding
            found = int(padding["pad_id"]) if padding else 0
        pad_id = int(found)
    eos_id = tok.token_to_id(eos_token) if eos_token else None
    return {
        "tokenizer": "hf",
        "tokenizer_model": model_type,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "pad_token": tok.id_to_token(pad_id),
        "pad_id": pad_id,
        "eos_id": eos_id,
        "clean": clean_mode,
    }
