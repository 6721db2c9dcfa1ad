"""How a CLIP export is checked (models/export/clip.py): the fp32 ONNX towers
against torch, our preprocessing and tokenizer against open_clip's, the
int8 variant made and every variant's embeddings compared with fp32 on
real photos and texts, and whether the text tower may be trimmed.

Why apart: these are the agreement checks that decide what is installed;
the export driver (clip.py) calls them and records their figures.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from photovault.models.clip import trim_length
from photovault.models.export.cliparch import INPUTS, encode_text_trimmed
from photovault.models.export.clipsource import open_clip_module, torch_module
from photovault.models.store import InstalledModel, Manifest, ModelError

log = logging.getLogger(__name__)

# ONNX fp32 against torch fp32 on identical inputs: only float reordering differs.
EXPORT_MIN_COSINE = 0.99999
# Our preprocessing + tokenizer against open_clip's: below this something is wired
# wrong (mean/std, crop, token ids) and the model is refused; below PARITY_WARN it
# is installed with a warning (tiny resampling differences on unusual models).
PARITY_MIN_COSINE = 0.99
PARITY_WARN_COSINE = 0.999
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


def text_can_trim(model: Any, context_length: int) -> bool:
    """Whether this model's text embedding survives cutting the padding off.

    True for open_clip's ``CLIP`` class (causal mask, end-token pooling);
    decided by computing it, not by trusting class names: the trimmed forward
    must give the full-length embedding (cosine >= EXPORT_MIN_COSINE) on the
    test texts, or the tower is exported at the fixed context length.
    """
    from photovault.models.tokenizer import default_tokenizer

    torch = torch_module()
    tokenizer = default_tokenizer()
    ids = tokenizer(list(TEST_TEXTS), context_length)
    cut = trim_length(ids, tokenizer.eot)
    try:
        with torch.no_grad():
            full = model.encode_text(torch.from_numpy(ids)).float().numpy()
            short = encode_text_trimmed(model, torch.from_numpy(ids[:, :cut])).float().numpy()
    except Exception as exc:  # any model that lacks the CLIP text layout
        log.info("text tower takes only full-length input: %s", exc)
        return False
    cosine = float(cosines(short, full).min())
    if cosine < EXPORT_MIN_COSINE:
        log.info("text tower takes only full-length input: trimmed cosine %.6f", cosine)
        return False
    return True


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


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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


def exact_factory(threads: int = 2) -> Any:
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


def embed(model_dir: Path, manifest: Manifest, variant: str, photos: list[np.ndarray]) -> Any:
    """Pre-normalisation embeddings of photos and TEST_TEXTS through our own
    analyzer code path (preprocess, tokenizer, session), as vaultd computes them."""
    from photovault.models.clip import ClipModel

    # The exact factory does not fuse graphs, so the GPU-only fp16 runs here too.
    runnable = dataclasses.replace(
        manifest, extra={k: v for k, v in manifest.extra.items() if k != "gpu_only_variants"}
    )
    clip = ClipModel(InstalledModel(model_dir, runnable), variant, exact_factory())
    try:
        images = clip.embed_pixels(photos, normalize=False) if photos else None
        texts = clip.encode_text(list(TEST_TEXTS), normalize=False)
    finally:
        clip.close()
    return images, texts


def torch_reference(model: Any, architecture: str, photos: list[np.ndarray]) -> Any:
    """open_clip's own embeddings: torchvision preprocessing, its tokenizer, torch."""
    from PIL import Image

    torch = torch_module()
    open_clip = open_clip_module()
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


def check_export(towers: dict[str, Any], paths: dict[str, Path], ctx: dict[str, Any]) -> dict:
    """fp32 ONNX against torch on identical inputs (export bugs are silent)."""
    from photovault.models.tokenizer import default_tokenizer

    torch = torch_module()
    factory = exact_factory()
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
        cosine = float(cosines(got, want).min())
        figures[f"{label}_min_cosine"] = cosine
        figures[f"{label}_max_abs_diff"] = float(np.abs(got - want).max())
        if cosine < EXPORT_MIN_COSINE:
            raise ModelError(
                f"{paths[role]}: ONNX differs from torch on {label} input "
                f"(cosine {cosine:.6f} < {EXPORT_MIN_COSINE})"
            )
    log.info("ONNX fp32 matches torch: %s", figures)
    return figures


def parity(
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
        "text_min_cosine": float(cosines(ours_text, ref_text).min()),
    }
    if ours_image is not None and ref_image is not None:
        figures["image_min_cosine"] = float(cosines(ours_image, ref_image).min())
        figures["photos"] = list(TEST_PHOTOS)
    worst = min(v for k, v in figures.items() if k.endswith("cosine"))
    if not figures["tokens_equal"] or worst < PARITY_MIN_COSINE:
        raise ModelError(f"our preprocessing/tokenizer disagree with open_clip's: {figures}")
    if worst < PARITY_WARN_COSINE:
        log.warning("our embeddings agree with open_clip's only to cosine %.5f", worst)
    log.info("ours vs open_clip: %s", figures)
    return figures
