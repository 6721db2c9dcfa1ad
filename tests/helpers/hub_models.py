"""Model folders in Immich's hub layout, built here from random weights (no network).

* ``clip_tokenizer_json``: CLIP's BPE as a Hugging Face ``tokenizer.json``, built
  with the ``tokenizers`` library from the merges file open_clip ships (the
  same file as ``models/data/``), shaped like openai/clip-vit-base-patch32's.
* ``unigram_tokenizer_json``: an XLM-R-like SentencePiece unigram tokenizer
  trained with ``tokenizers``' trainer on a few sentences in several languages
  (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, as XLM-R numbers them).
* ``export_open_clip``: a tiny random open_clip model's towers exported as
  Immich's exporter does (inputs ``image`` float[1,3,S,S] and ``text``
  int32[1,L], L2-normalised ``embedding``), plus config.json,
  preprocess_cfg.json and the tokenizer files.
* ``export_mclip_text``: a Multilingual-CLIP-style text tower
  (``input_ids`` + ``attention_mask``, masked mean pooling).

torch, open_clip and tokenizers are imported inside the functions (the
tests skip without them).
"""

from __future__ import annotations

import gzip
import json
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
SENTENCES = [
    "a photo of a cat on the sofa",
    "ein Foto von einer Katze auf dem Sofa",
    "uma foto de um gato no sofá",
    "une photo d'un chat sur le canapé",
    "Hunde spielen im Schnee am Strand",
    "cachorros brincando na neve e na praia",
    "der Geburtstagskuchen mit Kerzen",
    "bolo de aniversário com velas",
    "a birthday cake with candles",
    "dogs playing in the snow at the beach",
    "Straße in der Stadt bei Nacht",
    "rua da cidade à noite",
]


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def clip_tokenizer_json(folder: Path) -> Path:
    """textual/tokenizer.json (+ config and special tokens) for CLIP's BPE."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    from photovault.models.tokenizer import _bytes_to_unicode

    raw = resources.files("photovault.models").joinpath("data/bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.decompress(raw.read_bytes()).decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [(a, b) for a, b in (line.split() for line in lines)]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            unk_token="<|endoftext|>",
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        ("<|endoftext|>", 49407), ("<|startoftext|>", 49406), False, False
    )
    tok.add_special_tokens(
        [AddedToken("<|startoftext|>", normalized=True), AddedToken("<|endoftext|>")]
    )
    textual = folder / "textual"
    textual.mkdir(parents=True, exist_ok=True)
    tok.save(str(textual / "tokenizer.json"))
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    _write(textual / "tokenizer_config.json", {**special, "model_max_length": 77})
    _write(textual / "special_tokens_map.json", special)
    return textual / "tokenizer.json"


def unigram_tokenizer_json(folder: Path, vocab_size: int = 250) -> Path:
    """An XLM-R-like unigram tokenizer.json trained on SENTENCES."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        shrinking_factor=0.9,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    textual = folder / "textual"
    textual.mkdir(parents=True, exist_ok=True)
    tok.save(str(textual / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    _write(textual / "tokenizer_config.json", {**special, "model_max_length": 512})
    _write(textual / "special_tokens_map.json", special)
    return textual / "tokenizer.json"


def tiny_open_clip(arch: str, config: dict[str, Any], folder: Path, seed: int = 0) -> Any:
    """A random open_clip model of a tiny architecture registered from `config`."""
    import open_clip
    import torch

    path = folder / f"{arch}.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    open_clip.add_model_config(path)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    model.eval()
    return model


def _export(module: Any, args: tuple[Any, ...], path: Path, inputs: list[str]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    # The fused attention kernel has no ONNX export (Immich's exporter does the same).
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=inputs,
                output_names=["embedding"],
                opset_version=17,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_open_clip(
    model: Any,
    folder: Path,
    config: dict[str, Any],
    preprocess_cfg: dict[str, Any] | None = None,
    text: bool = True,
) -> Path:
    """visual/ (and textual/model.onnx) + config.json as Immich's exporter writes them."""
    import torch

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = model

        def forward(self, image: Any) -> Any:
            return self.clip.encode_image(image, normalize=True)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = model

        def forward(self, text: Any) -> Any:
            return self.clip.encode_text(text.long(), normalize=True)

    size = config["vision_cfg"]["image_size"]
    context = config["text_cfg"].get("context_length", 77)
    with torch.no_grad():
        _export(Image(), (torch.randn(1, 3, size, size),), folder / "visual/model.onnx", ["image"])
        if text:
            ids = torch.ones(1, context, dtype=torch.int32)
            _export(Text(), (ids,), folder / "textual/model.onnx", ["text"])
    preprocess_cfg = preprocess_cfg or {
        "size": [size, size],
        "mode": "RGB",
        "mean": CLIP_MEAN,
        "std": CLIP_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }
    _write(folder / "visual/preprocess_cfg.json", preprocess_cfg)
    _write(folder / "config.json", config)
    (folder / "README.md").write_text(
        "---\ntags:\n - immich\n - clip\nlicense: mit\n---\n# Tiny random model for tests\n",
        encoding="utf-8",
    )
    return folder


def mclip_text_tower(vocab: int, dim: int, seed: int = 3) -> Any:
    """A Multilingual-CLIP-like text tower: masked mean of embeddings, projected."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, 24)
            self.proj = torch.nn.Linear(24, dim)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.embed(input_ids.long())
            mask = attention_mask.unsqueeze(2).float()
            pooled = (tokens * mask).sum(1) / mask.sum(1)
            return torch.nn.functional.normalize(self.proj(pooled), dim=-1)

    torch.manual_seed(seed)
    return Tower().eval()


def export_mclip_text(tower: Any, folder: Path, context: int = 77) -> Path:
    import torch

    ids = torch.ones(1, context, dtype=torch.int32)
    with torch.no_grad():
        _export(
            tower,
            (ids, ids),
            folder / "textual/model.onnx",
            ["input_ids", "attention_mask"],
        )
    return folder / "textual/model.onnx"


def hf_cache(hf_home: Path, repo: str, src: Path, commit: str = "a" * 40) -> Path:
    """Put a folder into huggingface_hub's cache layout under HF_HOME, as a
    finished download leaves it (blobs, refs/main, snapshots/COMMIT)."""
    import hashlib
    import os
    import shutil

    storage = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        blob = storage / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot
