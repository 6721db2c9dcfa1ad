"""Export an open_clip model's image and text towers to ONNX (install time only).

``vaultctl models install clip ARCH --pretrained TAG|PATH`` lands here. open_clip
(and through it torch and torchvision) is imported only in this module and only
inside functions, so vaultd never needs them; it is the ``photovault[export]``
extra.

Where the weights come from:

* ``--pretrained TAG`` (e.g. ``laion2b_s34b_b79k``): open_clip downloads the
  checkpoint from the Hugging Face hub. Before trying, the hub's host is probed
  with a short timeout in a separate thread (DNS lookups ignore socket
  timeouts), so a machine without network fails within seconds with a message
  saying how to install from a file or import a folder instead, never hangs.
* ``--pretrained PATH``: a local open_clip checkpoint (state dict, ``.pt``,
  ``.bin`` or ``.safetensors``), for air-gapped machines and for our tests,
  which cannot download real weights.

Any open_clip architecture works the same way, as long as vaultd can
reproduce its preprocessing and tokenizer: short-side bicubic resize + center
crop (``models/clip.py``) and CLIP's BPE tokenizer (``models/tokenizer.py``).
Others (SigLIP's squash resize or its SentencePiece tokenizer) are refused
with the reason rather than installed to give quietly wrong embeddings.

What is written and checked, per tower (``image``: ``pixels`` float[N,3,S,S],
``text``: ``tokens`` int64[N,context]; both give ``embedding`` float[N,D]
*before* L2 normalisation, which ``models/clip.py`` applies):

* ``fp32``: must match the torch model on the same inputs (cosine ≥ 0.99999);
  then our whole path (our preprocessing, our tokenizer, onnxruntime) is
  compared with open_clip's own (torchvision preprocessing, its tokenizer) on
  real photos and texts and the figures go into the manifest.
* ``fp16``: for GPUs (fp16 ONNX is no faster on CPU, and onnxruntime's full
  graph fusion crashes on it there; see shared/MEASUREMENTS.md). Checked on an
  unfused CPU session.
* ``int8``: dynamic quantization of MatMul only (quantizing the patch
  convolution too was ~20% slower), 2.5-3x faster on CPU. Installed only when
  its cosine to fp32 is ≥ 0.998 on every test photo and text; the figure is
  recorded in the manifest, a refusal too.

Test photos are scikit-image's (chelsea, coffee, rocket, astronaut); without
scikit-image the int8 variant cannot be checked and is not installed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import inspect
import logging
import os
import re
import socket
import tempfile
import threading
import warnings
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from photovault.models.clip import trim_length
from photovault.models.store import (
    InstalledModel,
    Manifest,
    ModelError,
    ModelFile,
    describe_file,
    write_manifest,
)

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "fp16", "int8")
INPUTS = {"image": "pixels", "text": "tokens"}
OUTPUT = "embedding"
OPSET = 17
# ONNX fp32 against torch fp32 on identical inputs: only float reordering differs.
EXPORT_MIN_COSINE = 0.99999
# A reduced-precision variant is installed only if it agrees this well with fp32.
VARIANT_MIN_COSINE = 0.998
# Our preprocessing + tokenizer against open_clip's: below this something is wired
# wrong (mean/std, crop, token ids) and the model is refused; below PARITY_WARN it
# is installed with a warning (tiny resampling differences on unusual models).
PARITY_MIN_COSINE = 0.99
PARITY_WARN_COSINE = 0.999
HUB_TIMEOUT_S = 5.0
TOKENIZER = "clip-bpe"
VOCAB_SIZE = 49408
TEST_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
TEST_TEXTS = (
    "a photo of a cat",
    "a cup of coffee on a saucer",
    "a rocket on the launch pad",
    "an astronaut with the american flag",
    "a beach at sunset",
    "two dogs playing in the snow",
    "birthday cake with candles",
    "a city street at night",
)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelError(_NEEDS_EXPORT) from exc
    return torch


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise ModelError(_NEEDS_EXPORT) from exc
    return open_clip


_NEEDS_EXPORT = (
    "exporting CLIP needs torch, torchvision and open_clip_torch: "
    "pip install 'photovault[export]' (or import an exported folder with "
    "`vaultctl models import clip DIR`)"
)


def default_variants() -> tuple[str, ...]:
    """fp32 and int8 everywhere; fp16 only where onnxruntime has a GPU to run it
    (on the CPU it is slower than fp32 and ~170 MB of disk per tower for nothing)."""
    from photovault.models.session import available_providers

    gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"}
    return ("fp32", "fp16", "int8") if gpu & set(available_providers()) else ("fp32", "int8")


def store_name(architecture: str, pretrained: str) -> str:
    """The model's name in the store, e.g. ``vit-b-32-laion2b_s34b_b79k``.

    A checkpoint file contributes its stem, so two files for one architecture
    install side by side.
    """
    tag = Path(pretrained).stem if _is_path(pretrained) else pretrained
    name = re.sub(r"[^a-z0-9._-]+", "-", f"{architecture}-{tag}".lower()).strip("-._")
    return name[:64] or "clip"


def _is_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.startswith(".") or Path(pretrained).is_file()


def _probe(host: str, port: int, timeout: float) -> str | None:
    """None if host:port accepts a TCP connection within `timeout`, else the reason.

    Runs in a daemon thread joined with a timeout: getaddrinfo has no timeout
    of its own and can block for tens of seconds on a box without DNS.
    """
    result: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=attempt, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return result[0] if result else f"no answer within {timeout:.0f} s"


def _offline_help(architecture: str, tag: str, where: str, reason: str) -> str:
    return (
        f"cannot download {architecture} weights {tag!r} from {where}: {reason}. "
        "Without network, either (1) copy the checkpoint file (open_clip_pytorch_model.bin "
        f"or open_clip_model.safetensors from https://huggingface.co/{where.split('/', 1)[-1]}) "
        f"here and run `vaultctl models install clip {architecture} --pretrained /path/to/file`, "
        f"or (2) run `vaultctl models install clip {architecture} --pretrained {tag}` on a "
        "machine with network and copy the installed folder here with "
        "`vaultctl models import clip DIR`"
    )


def check_hub(architecture: str, tag: str, timeout: float = HUB_TIMEOUT_S) -> None:
    """Fail fast (ModelError) when a pretrained tag cannot be downloaded from here."""
    open_clip = _open_clip()
    cfg = open_clip.get_pretrained_cfg(architecture, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        raise ModelError(
            f"{tag!r} is neither a file nor a pretrained tag of {architecture} "
            f"(tags: {', '.join(tags) or 'none'})"
        )
    if cfg.get("hf_hub"):
        endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        where = f"{endpoint.hostname}/{cfg['hf_hub'].rstrip('/')}"
    else:
        endpoint = urlparse(cfg.get("url") or "")
        where = cfg.get("url") or "?"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline and cfg.get("hf_hub"):
        raise ModelError(_offline_help(architecture, tag, where, "HF_HUB_OFFLINE is set"))
    if not endpoint.hostname:
        raise ModelError(f"{architecture} {tag}: open_clip knows no download location")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    reason = _probe(endpoint.hostname, port, timeout)
    if reason is not None:
        raise ModelError(_offline_help(architecture, tag, where, reason))


def load_model(architecture: str, pretrained: str) -> tuple[Any, str]:
    """The open_clip model in eval mode and a one-line description of its weights."""
    open_clip = _open_clip()
    if architecture not in open_clip.list_models():
        raise ModelError(
            f"unknown open_clip architecture {architecture!r} "
            "(see open_clip.list_models(), e.g. ViT-B-32, ViT-L-14, RN50)"
        )
    if _is_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelError(f"{path}: checkpoint file not found")
        source = f"open_clip {open_clip.__version__}: {architecture} from file {path.name} "
        source += f"(sha256 {_sha256(path)})"
        pretrained = str(path)
    else:
        check_hub(architecture, pretrained)
        cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
        source = f"open_clip {open_clip.__version__}: {architecture} pretrained={pretrained}"
        if cfg.get("hf_hub"):
            source += f" (hf-hub {cfg['hf_hub'].rstrip('/')})"
    log.info("loading %s weights %s", architecture, pretrained)
    try:
        model = open_clip.create_model(architecture, pretrained=pretrained, weights_only=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load {architecture} weights {pretrained}: {exc}") from exc
    return model.eval(), source


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tokenizer_sha256() -> str:
    """Hash of the BPE merges file our tokenizer uses; recorded so an imported
    folder that names a different vocabulary can be refused."""
    data = (
        resources.files("photovault.models").joinpath("data/bpe_simple_vocab_16e6.txt.gz")
    ).read_bytes()
    return hashlib.sha256(data).hexdigest()


def describe(model: Any, architecture: str) -> dict[str, Any]:
    """Preprocessing and text facts vaultd must reproduce; ModelError if it cannot."""
    open_clip = _open_clip()
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


def _towers(model: Any, trim: bool = False) -> dict[str, Any]:
    """torch modules mapping (pixels | tokens) -> float32 embedding, for export.

    The casts make an fp16 model's ONNX file take and give float32, so the
    analyzer feeds every variant the same arrays. With ``trim`` the text tower
    takes any sequence length up to the context (see ``text_can_trim``).
    """
    torch = _torch()

    class ImageTower(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip
            self.dtype = next(clip.parameters()).dtype

        def forward(self, pixels: Any) -> Any:
            return self.clip.encode_image(pixels.to(self.dtype)).float()

    class TextTower(torch.nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, tokens: Any) -> Any:
            if trim:
                return _encode_text_trimmed(self.clip, tokens).float()
            return self.clip.encode_text(tokens).float()

    return {"image": ImageTower(model).eval(), "text": TextTower(model).eval()}


def _encode_text_trimmed(clip: Any, tokens: Any) -> Any:
    """open_clip's ``CLIP.encode_text`` for tokens of any length L <= context.

    The stock method adds all 77 positional embeddings and the 77x77 causal
    mask, so it only takes full-length input. Slicing both to L gives the same
    embedding: the mask is causal, so no position sees a later one, and the
    pooled position (the end token) comes before the cut. A typical query is
    8-15 tokens, so the text tower does a fifth of the work or less.
    """
    from open_clip.transformer import text_global_pool

    nn = _torch().nn
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
    functional = _torch().nn.functional
    batch, width, heads = x.shape[0], mha.embed_dim, mha.num_heads
    qkv = functional.linear(x, mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.reshape(batch, -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    scores = (q * (width // heads) ** -0.5) @ k.transpose(-2, -1) + mask
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, -1, width)
    return mha.out_proj(out)


def text_can_trim(model: Any, context_length: int) -> bool:
    """Whether this model's text embedding survives cutting the padding off.

    True for open_clip's ``CLIP`` class (causal mask, end-token pooling);
    decided by computing it, not by trusting class names: the trimmed forward
    must give the full-length embedding (cosine >= EXPORT_MIN_COSINE) on the
    test texts, or the tower is exported at the fixed context length.
    """
    from photovault.models.tokenizer import default_tokenizer

    torch = _torch()
    tokenizer = default_tokenizer()
    ids = tokenizer(list(TEST_TEXTS), context_length)
    cut = trim_length(ids, tokenizer.eot)
    try:
        with torch.no_grad():
            full = model.encode_text(torch.from_numpy(ids)).float().numpy()
            short = _encode_text_trimmed(model, torch.from_numpy(ids[:, :cut])).float().numpy()
    except Exception as exc:  # any model that lacks the CLIP text layout
        log.info("text tower takes only full-length input: %s", exc)
        return False
    cosine = float(_cosines(short, full).min())
    if cosine < EXPORT_MIN_COSINE:
        log.info("text tower takes only full-length input: trimmed cosine %.6f", cosine)
        return False
    return True


def export_tower(
    tower: Any, role: str, path: Path, input_size: int, context_length: int, trim: bool = False
) -> None:
    """One tower to ONNX (TorchScript exporter, opset 17) with a dynamic batch
    axis, and for a ``trim`` text tower a dynamic length axis too."""
    torch = _torch()
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


def quantize_int8(src: Path, dst: Path) -> None:
    """MatMul-only dynamic int8, with 7-bit weights where session.py allows it.

    On CPUs without VNNI (this AVX2 EPYC), onnxruntime's u8 x s8 kernels
    saturate 16-bit intermediate sums; with full-range weights a random
    ViT-B-32 image tower agreed with fp32 only to cosine 0.981 on real photos,
    with ``reduce_range`` to 0.9996 (0.9997 adding per-channel scales). Until
    ``session.quantize_dynamic_int8`` takes these options the plain call is
    used and the cosine check at install refuses what it gets wrong.
    """
    from photovault.models.session import quantize_dynamic_int8

    accepted = inspect.signature(quantize_dynamic_int8).parameters
    options = {k: True for k in ("reduce_range", "per_channel") if k in accepted}
    if not options:
        log.info("session.quantize_dynamic_int8 has no reduce_range: int8 may be refused")
    quantize_dynamic_int8(src, dst, ["MatMul"], **options)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def sample_photos() -> list[np.ndarray] | None:
    """scikit-image's sample photos as RGB uint8, or None without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        return None
    photos = []
    for name in TEST_PHOTOS:
        pixels = np.asarray(getattr(data, name)())
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        photos.append(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8))
    return photos


def _exact_factory(threads: int = 2) -> Any:
    """A session factory without graph fusion: for checks, where numbers matter
    and speed does not, and because full fusion crashes on fp16 graphs on CPU."""
    from photovault.models.session import SessionFactory

    class ExactFactory(SessionFactory):
        def session_options(self, spinning: bool = False) -> Any:
            options = super().session_options(spinning)
            options.graph_optimization_level = type(
                options.graph_optimization_level
            ).ORT_DISABLE_ALL
            return options

    return ExactFactory(["CPUExecutionProvider"], threads, 1, 600.0)


def _embed(model_dir: Path, manifest: Manifest, variant: str, photos: list[np.ndarray]) -> Any:
    """Pre-normalisation embeddings of photos and TEST_TEXTS through our own
    analyzer code path (preprocess, tokenizer, session), as vaultd computes them."""
    from photovault.models.clip import ClipModel

    # The exact factory does not fuse graphs, so the GPU-only fp16 runs here too.
    runnable = dataclasses.replace(
        manifest, extra={k: v for k, v in manifest.extra.items() if k != "gpu_only_variants"}
    )
    clip = ClipModel(InstalledModel(model_dir, runnable), variant, _exact_factory())
    try:
        images = clip.embed_pixels(photos, normalize=False) if photos else None
        texts = clip.encode_text(list(TEST_TEXTS), normalize=False)
    finally:
        clip.close()
    return images, texts


def _torch_reference(model: Any, architecture: str, photos: list[np.ndarray]) -> Any:
    """open_clip's own embeddings: torchvision preprocessing, its tokenizer, torch."""
    from PIL import Image

    torch = _torch()
    open_clip = _open_clip()
    from open_clip.transform import PreprocessCfg, image_transform_v2

    preprocess = image_transform_v2(
        PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)), is_train=False
    )
    tokenizer = open_clip.get_tokenizer(architecture)
    with torch.no_grad():
        images = None
        if photos:
            batch = torch.stack([preprocess(Image.fromarray(p)) for p in photos])
            images = model.encode_image(batch).numpy()
        ids = tokenizer(list(TEST_TEXTS))
        texts = model.encode_text(ids).numpy()
    return images, texts, ids.numpy()


def _check_export(towers: dict[str, Any], paths: dict[str, Path], ctx: dict[str, Any]) -> dict:
    """fp32 ONNX against torch on identical inputs (export bugs are silent)."""
    from photovault.models.tokenizer import default_tokenizer

    torch = _torch()
    factory = _exact_factory()
    size = ctx["input_size"]
    pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    tokenizer = default_tokenizer()
    ids = tokenizer(list(TEST_TEXTS[:3]), ctx["context_length"])
    tokens = torch.from_numpy(ids)
    # (figure label, tower, ONNX input, torch input)
    cases = [("image", "image", pixels, pixels), ("text", "text", tokens, tokens)]
    if ctx.get("text_trim"):
        # The trimmed input must give what torch gives for the full-length one.
        trimmed = tokens[:, : trim_length(ids, tokenizer.eot)]
        cases.append(("text_trimmed", "text", trimmed, tokens))
    figures: dict[str, float] = {}
    for label, role, x, reference in cases:
        with torch.no_grad():
            want = towers[role](reference).numpy()
        session = factory.create(paths[role])
        (got,) = session.run(None, {INPUTS[role]: x.numpy()})
        cosine = float(_cosines(got, want).min())
        figures[f"{label}_min_cosine"] = cosine
        figures[f"{label}_max_abs_diff"] = float(np.abs(got - want).max())
        if cosine < EXPORT_MIN_COSINE:
            raise ModelError(
                f"{paths[role]}: ONNX differs from torch on {label} input "
                f"(cosine {cosine:.6f} < {EXPORT_MIN_COSINE})"
            )
    log.info("ONNX fp32 matches torch: %s", figures)
    return figures


def export(
    out_dir: Path,
    architecture: str,
    pretrained: str,
    variants: tuple[str, ...] | list[str] | None = None,
    name: str | None = None,
) -> Manifest:
    """Write the ONNX towers and manifest.json into out_dir; returns the manifest.

    Variants that fail their agreement check are left out (and the reason is
    recorded under ``extra.refused``); fp32 failing any check fails the export.
    """
    variants = tuple(dict.fromkeys(variants or default_variants()))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or "fp32" not in variants:
        raise ModelError(
            f"variants must include fp32 and be among {', '.join(VARIANTS)}; "
            f"got {', '.join(variants)}"
        )
    open_clip = _open_clip()
    torch = _torch()
    model, source = load_model(architecture, pretrained)
    ctx = describe(model, architecture)
    ctx["text_trim"] = text_can_trim(model, ctx["context_length"])
    out_dir.mkdir(parents=True, exist_ok=True)

    towers = _towers(model, ctx["text_trim"])
    files: dict[tuple[str, str], Path] = {}
    for role in ("image", "text"):
        path = out_dir / f"{role}.fp32.onnx"
        log.info("exporting %s tower of %s to %s", role, architecture, path)
        export_tower(
            towers[role], role, path, ctx["input_size"], ctx["context_length"], ctx["text_trim"]
        )
        files[(role, "fp32")] = path
    checks: dict[str, Any] = {
        "onnx_vs_torch": _check_export(
            towers, {r: files[(r, "fp32")] for r in ("image", "text")}, ctx
        )
    }

    if "fp16" in variants:
        half = _towers(copy.deepcopy(model).half(), ctx["text_trim"])
        for role in ("image", "text"):
            path = out_dir / f"{role}.fp16.onnx"
            export_tower(
                half[role], role, path, ctx["input_size"], ctx["context_length"], ctx["text_trim"]
            )
            files[(role, "fp16")] = path
        del half
    if "int8" in variants:
        for role in ("image", "text"):
            path = out_dir / f"{role}.int8.onnx"
            quantize_int8(files[(role, "fp32")], path)
            files[(role, "int8")] = path

    def manifest_for(kept: dict[tuple[str, str], Path], extra: dict[str, Any]) -> Manifest:
        described = tuple(describe_file(p, role, var) for (role, var), p in sorted(kept.items()))
        dim = _output_dim(described)
        return Manifest(
            name=name or store_name(architecture, pretrained),
            task="clip",
            architecture=architecture,
            input_size=ctx["input_size"],
            mean=ctx["mean"],
            std=ctx["std"],
            files=described,
            embedding_dim=dim,
            source=source,
            licence=_licence(open_clip, architecture, pretrained),
            extra=extra,
        )

    extra: dict[str, Any] = {
        "context_length": ctx["context_length"],
        "tokenizer": TOKENIZER,
        "tokenizer_sha256": tokenizer_sha256(),
        "vocab_size": VOCAB_SIZE,
        "crop_fraction": 1.0,
        "resize_mode": "shortest",
        "interpolation": "bicubic",
        "logit_scale": ctx["logit_scale"],
        # Informative; the analyzer reads the text input's shape ([batch, null] = any length).
        "text_trim": ctx["text_trim"],
        "normalized": False,
        "gpu_only_variants": ["fp16"],
        "pretrained": pretrained if not _is_path(pretrained) else Path(pretrained).name,
        "open_clip": open_clip.__version__,
        "torch": torch.__version__.split("+")[0],
        "checks": checks,
    }
    provisional = manifest_for(files, extra)

    photos = sample_photos()
    if photos is None:
        log.warning("scikit-image is not installed: int8 cannot be checked on real photos")
    ours_image, ours_text = _embed(out_dir, provisional, "fp32", photos or [])
    ref_image, ref_text, ref_ids = _torch_reference(model, architecture, photos or [])
    checks["ours_vs_open_clip"] = _parity(
        ours_image, ours_text, ref_image, ref_text, ref_ids, ctx["context_length"]
    )

    refused: dict[str, str] = {}
    for variant in ("fp16", "int8"):
        if variant not in variants:
            continue
        if photos is None and variant == "int8":
            refused[variant] = "not checked: scikit-image is not installed"
        else:
            image, text = _embed(out_dir, provisional, variant, photos or [])
            figures = {"text_min_cosine": float(_cosines(text, ours_text).min())}
            if image is not None:
                figures["image_min_cosine"] = float(_cosines(image, ours_image).min())
            checks[variant] = figures
            worst = min(figures.values())
            log.info("%s variant: cosine to fp32 %s", variant, figures)
            if worst >= VARIANT_MIN_COSINE:
                continue
            refused[variant] = f"cosine to fp32 {worst:.5f} < {VARIANT_MIN_COSINE}"
        log.warning("not installing the %s variant: %s", variant, refused[variant])
        for role in ("image", "text"):
            files.pop((role, variant)).unlink(missing_ok=True)
    if refused:
        extra["refused"] = refused
    manifest = manifest_for(files, extra)
    write_manifest(out_dir, manifest)
    return manifest


def _parity(
    ours_image: np.ndarray | None,
    ours_text: np.ndarray,
    ref_image: np.ndarray | None,
    ref_text: np.ndarray,
    ref_ids: np.ndarray,
    context_length: int,
) -> dict[str, Any]:
    """Compare our embeddings with open_clip's; refuse a clearly miswired model."""
    from photovault.models.tokenizer import default_tokenizer

    ours_ids = default_tokenizer()(list(TEST_TEXTS), context_length)
    figures: dict[str, Any] = {
        "tokens_equal": bool(np.array_equal(ours_ids, ref_ids)),
        "text_min_cosine": float(_cosines(ours_text, ref_text).min()),
    }
    if ours_image is not None and ref_image is not None:
        figures["image_min_cosine"] = float(_cosines(ours_image, ref_image).min())
        figures["photos"] = list(TEST_PHOTOS)
    worst = min(v for k, v in figures.items() if k.endswith("cosine"))
    if not figures["tokens_equal"] or worst < PARITY_MIN_COSINE:
        raise ModelError(f"our preprocessing/tokenizer disagree with open_clip's: {figures}")
    if worst < PARITY_WARN_COSINE:
        log.warning("our embeddings agree with open_clip's only to cosine %.5f", worst)
    log.info("ours vs open_clip: %s", figures)
    return figures


def _output_dim(files: tuple[ModelFile, ...]) -> int:
    """Both towers must give the same width: that is what makes them comparable."""
    dims = {f"{f.role}.{f.variant}": next(iter(f.outputs.values()))[-1] for f in files}
    if len(set(dims.values())) != 1 or None in dims.values():
        raise ModelError(f"image and text towers disagree on the embedding width: {dims}")
    return int(next(iter(dims.values())))  # type: ignore[arg-type]


def _licence(open_clip: Any, architecture: str, pretrained: str) -> str:
    """open_clip does not record licences; point at the model card instead of guessing."""
    if _is_path(pretrained):
        return "see the checkpoint's model card"
    cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
    hub = (cfg.get("hf_hub") or "").rstrip("/")
    return f"see https://huggingface.co/{hub}" if hub else "see the open_clip model card"


def install(
    store_dir: Path,
    architecture: str,
    pretrained: str,
    variants: tuple[str, ...] | list[str] | None = None,
    name: str | None = None,
    replace: bool = False,
) -> Manifest:
    """Export into a temporary folder and import it through the store's validation."""
    from photovault.models.install import import_model

    with tempfile.TemporaryDirectory(prefix="photovault-export-") as tmp:
        export(Path(tmp), architecture, pretrained, variants, name)
        return import_model(Path(store_dir), "clip", Path(tmp), replace=replace)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export an open_clip model to ONNX")
    parser.add_argument("architecture", help="open_clip architecture, e.g. ViT-B-32")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--pretrained", required=True, help="pretrained tag or checkpoint file")
    parser.add_argument("--variants", help="comma-separated (default: fp32,int8 + fp16 on GPUs)")
    parser.add_argument("--name", help="model name in the store")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    manifest = export(
        args.out_dir,
        args.architecture,
        args.pretrained,
        args.variants.split(",") if args.variants else None,
        args.name,
    )
    print(f"exported {manifest.name} to {args.out_dir} ({', '.join(manifest.variants)})")


if __name__ == "__main__":
    main()
