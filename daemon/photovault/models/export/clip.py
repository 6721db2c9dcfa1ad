"""Export an open_clip model's image and text towers to ONNX (install time only).

``vaultctl models install clip ARCH --pretrained TAG|PATH`` lands here. open_clip
(and through it torch and torchvision) is imported only in this module and its
parts (clip*.py) and only inside functions, so vaultd never needs them; it is
the ``photovault[export]`` extra.

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

The work is split by job: where the weights come from (clipsource.py), the
towers and their ONNX export (cliparch.py), and the checks and the int8
variant (clipchecks.py). This module is the driver (`export`, `install`,
`main`) and re-exports the names others import from it.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from photovault.models.export.cliparch import (
    INPUTS,
    OPSET,
    OUTPUT,
    VOCAB_SIZE,
    describe,
    export_tower,
    towers_of,
)
from photovault.models.export.clipchecks import (
    EXPORT_MIN_COSINE,
    PARITY_MIN_COSINE,
    PARITY_WARN_COSINE,
    TEST_PHOTOS,
    TEST_TEXTS,
    check_export,
    cosines,
    embed,
    parity,
    quantize_int8,
    sample_photos,
    text_can_trim,
    torch_reference,
)
from photovault.models.export.clipsource import (
    HUB_TIMEOUT_S,
    check_hub,
    is_path,
    licence,
    load_model,
    open_clip_module,
    store_name,
    torch_module,
)
from photovault.models.store import (
    Manifest,
    ModelError,
    ModelFile,
    describe_file,
    write_manifest,
)

__all__ = [
    "EXPORT_MIN_COSINE",
    "HUB_TIMEOUT_S",
    "INPUTS",
    "OPSET",
    "OUTPUT",
    "PARITY_MIN_COSINE",
    "PARITY_WARN_COSINE",
    "TEST_PHOTOS",
    "TEST_TEXTS",
    "TOKENIZER",
    "VARIANTS",
    "VARIANT_MIN_COSINE",
    "VOCAB_SIZE",
    "check_hub",
    "default_variants",
    "describe",
    "export",
    "export_tower",
    "install",
    "load_model",
    "main",
    "quantize_int8",
    "sample_photos",
    "store_name",
    "text_can_trim",
    "tokenizer_sha256",
]

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "fp16", "int8")
# A reduced-precision variant is installed only if it agrees this well with fp32.
VARIANT_MIN_COSINE = 0.998
TOKENIZER = "clip-bpe"


def default_variants() -> tuple[str, ...]:
    """fp32 and int8 everywhere; fp16 only where onnxruntime has a GPU to run it
    (on the CPU it is slower than fp32 and ~170 MB of disk per tower for nothing)."""
    from photovault.models.session import available_providers

    gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"}
    return ("fp32", "fp16", "int8") if gpu & set(available_providers()) else ("fp32", "int8")


def tokenizer_sha256() -> str:
    """Hash of the BPE merges file our tokenizer uses; recorded so an imported
    folder that names a different vocabulary can be refused."""
    data = (
        resources.files("photovault.models").joinpath("data/bpe_simple_vocab_16e6.txt.gz")
    ).read_bytes()
    return hashlib.sha256(data).hexdigest()


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
    open_clip = open_clip_module()
    torch = torch_module()
    model, source = load_model(architecture, pretrained)
    ctx = describe(model, architecture)
    ctx["text_trim"] = text_can_trim(model, ctx["context_length"])
    out_dir.mkdir(parents=True, exist_ok=True)

    towers = towers_of(model, ctx["text_trim"])
    files: dict[tuple[str, str], Path] = {}
    for role in ("image", "text"):
        path = out_dir / f"{role}.fp32.onnx"
        log.info("exporting %s tower of %s to %s", role, architecture, path)
        export_tower(
            towers[role], role, path, ctx["input_size"], ctx["context_length"], ctx["text_trim"]
        )
        files[(role, "fp32")] = path
    checks: dict[str, Any] = {
        "onnx_vs_torch": check_export(
            towers, {r: files[(r, "fp32")] for r in ("image", "text")}, ctx
        )
    }

    if "fp16" in variants:
        half = towers_of(copy.deepcopy(model).half(), ctx["text_trim"])
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
            licence=licence(open_clip, architecture, pretrained),
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
        "pretrained": pretrained if not is_path(pretrained) else Path(pretrained).name,
        "open_clip": open_clip.__version__,
        "torch": torch.__version__.split("+")[0],
        "checks": checks,
    }
    provisional = manifest_for(files, extra)

    photos = sample_photos()
    if photos is None:
        log.warning("scikit-image is not installed: int8 cannot be checked on real photos")
    ours_image, ours_text = embed(out_dir, provisional, "fp32", photos or [])
    ref_image, ref_text, ref_ids = torch_reference(model, architecture, photos or [])
    checks["ours_vs_open_clip"] = parity(
        ours_image, ours_text, ref_image, ref_text, ref_ids, ctx["context_length"]
    )

    refused: dict[str, str] = {}
    for variant in ("fp16", "int8"):
        if variant not in variants:
            continue
        if photos is None and variant == "int8":
            refused[variant] = "not checked: scikit-image is not installed"
        else:
            image, text = embed(out_dir, provisional, variant, photos or [])
            figures = {"text_min_cosine": float(cosines(text, ours_text).min())}
            if image is not None:
                figures["image_min_cosine"] = float(cosines(image, ours_image).min())
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


def _output_dim(files: tuple[ModelFile, ...]) -> int:
    """Both towers must give the same width: that is what makes them comparable."""
    dims = {f"{f.role}.{f.variant}": next(iter(f.outputs.values()))[-1] for f in files}
    if len(set(dims.values())) != 1 or None in dims.values():
        raise ModelError(f"image and text towers disagree on the embedding width: {dims}")
    return int(next(iter(dims.values())))  # type: ignore[arg-type]


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
