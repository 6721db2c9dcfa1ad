"""A CLIP model's towers for ONNX (models/export/clip.py): whether vaultd can
reproduce the model's preprocessing and tokenizer (`describe`), the torch
wrappers that give each tower float32 in and out (the text tower optionally
for any token length), and the ONNX export of one tower.

Why apart: this is the torch-facing architecture code; what the weights are
(clipsource.py) and whether the ONNX files agree with torch (clipchecks.py)
are other jobs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from photovault.models.export.clipsource import open_clip_module, torch_module
from photovault.models.store import ModelError

INPUTS = {"image": "pixels", "text": "tokens"}
OUTPUT = "embedding"
OPSET = 17
VOCAB_SIZE = 49408


def describe(model: Any, architecture: str) -> dict[str, Any]:
    """Preprocessing and text facts vaultd must reproduce; ModelError if it cannot."""
    open_clip = open_clip_module()
    pre = open_clip.get_model_preprocess_cfg(model)
    size = pre.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise ModelError(f"{architecture}: non-square input {size} is not supported")
        size = size[0]
    problems = []
    if pre.get("resize_mode", "shortest") != "shortest":
        problems.append(f"resize mode {pre['resize_mode']!r} (vaultd does shortest-side + crop)")
    if pre.get("interpolation", "bicubic") != "bicubic":
        problems.append(f"interpolation {pre['interpolation']!r} (vaultd uses bicubic)")
    tokenizer = open_clip.get_tokenizer(architecture)
    if type(tokenizer).__name__ != "SimpleTokenizer":
        problems.append(f"tokenizer {type(tokenizer).__name__} (vaultd has CLIP's BPE only)")
    vocab = getattr(model, "vocab_size", None)
    if vocab is not None and int(vocab) != VOCAB_SIZE:
        problems.append(f"vocabulary of {vocab} tokens (CLIP's BPE has {VOCAB_SIZE})")
    if problems:
        raise ModelError(f"{architecture} cannot run in vaultd: " + "; ".join(problems))
    logit_scale = getattr(model, "logit_scale", None)
    return {
        "input_size": int(size),
        "mean": tuple(float(x) for x in pre.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": tuple(float(x) for x in pre.get("std", open_clip.OPENAI_DATASET_STD)),
        "context_length": int(getattr(tokenizer, "context_length", 77)),
        "logit_scale": None if logit_scale is None else float(logit_scale.detach().exp()),
    }


def towers_of(model: Any, trim: bool = False) -> dict[str, Any]:
    """torch modules mapping (pixels | tokens) -> float32 embedding, for export.

    The casts make an fp16 model's ONNX file take and give float32, so the
    analyzer feeds every variant the same arrays. With ``trim`` the text tower
    takes any sequence length up to the context (see ``text_can_trim``).
    """
    module: Any = torch_module().nn.Module  # torch has no stubs: Any to mypy

    class ImageTower(module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip
            self.dtype = next(clip.parameters()).dtype

        def forward(self, pixels: Any) -> Any:
            return self.clip.encode_image(pixels.to(self.dtype)).float()

    class TextTower(module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, tokens: Any) -> Any:
            if trim:
                return encode_text_trimmed(self.clip, tokens).float()
            return self.clip.encode_text(tokens).float()

    return {"image": ImageTower(model).eval(), "text": TextTower(model).eval()}


def encode_text_trimmed(clip: Any, tokens: Any) -> Any:
    """open_clip's ``CLIP.encode_text`` for tokens of any length L <= context.

    The stock method adds all 77 positional embeddings and the 77x77 causal
    mask, so it only takes full-length input. Slicing both to L gives the same
    embedding: the mask is causal, so no position sees a later one, and the
    pooled position (the end token) comes before the cut. A typical query is
    8-15 tokens, so the text tower does a fifth of the work or less.
    """
    from open_clip.transformer import text_global_pool

    nn = torch_module().nn
    length = tokens.shape[1]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype)
    x = x + clip.positional_embedding[:length].to(cast_dtype)
    mask = clip.attn_mask[:length, :length].to(cast_dtype)
    for block in clip.transformer.resblocks:
        if hasattr(block, "ln_1_kv") or not isinstance(block.attn, nn.MultiheadAttention):
            raise ModelError(f"{type(block).__name__} is not a plain self-attention block")
        x = x + block.ls_1(_self_attention(block.attn, block.ln_1(x), mask))
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
    x = clip.ln_final(x)
    eos = getattr(clip, "text_eos_id", None)
    x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=eos)
    if clip.text_projection is not None:
        if isinstance(clip.text_projection, nn.Linear):
            x = clip.text_projection(x)
        else:
            x = x @ clip.text_projection
    return x


def _self_attention(mha: Any, x: Any, mask: Any) -> Any:
    """``nn.MultiheadAttention`` on batch-first x, written out so the ONNX trace
    keeps the sequence length symbolic (torch's own reshapes bake in the length
    of the example input)."""
    functional = torch_module().nn.functional
    batch, width, heads = x.shape[0], mha.embed_dim, mha.num_heads
    qkv = functional.linear(x, mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.reshape(batch, -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    scores = (q * (width // heads) ** -0.5) @ k.transpose(-2, -1) + mask
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, -1, width)
    return mha.out_proj(out)


def export_tower(
    tower: Any, role: str, path: Path, input_size: int, context_length: int, trim: bool = False
) -> None:
    """One tower to ONNX (TorchScript exporter, opset 17) with a dynamic batch
    axis, and for a ``trim`` text tower a dynamic length axis too."""
    torch = torch_module()
    if role == "image":
        dummy = torch.zeros(1, 3, input_size, input_size)
    else:
        dummy = torch.zeros(1, context_length, dtype=torch.int64)
    name = INPUTS[role]
    axes = {0: "batch", 1: "length"} if role == "text" and trim else {0: "batch"}
    # nn.MultiheadAttention's inference fast path traces to an op the exporter cannot
    # write (aten::_native_multi_head_attention); the slow path is the same maths.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of one that needs
            # onnxscript; it exports these towers exactly (checked after export).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*[Tt]race.*")
            torch.onnx.export(
                tower,
                (dummy,),
                str(path),
                input_names=[name],
                output_names=[OUTPUT],
                dynamic_axes={name: axes, OUTPUT: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
