"""CLIP install and import: export through open_clip, variants, refusals, offline.

Exports use a tiny open_clip architecture registered from a JSON config
(two layers, 32-px input, 16-d embedding), which exercises the same code as
ViT-B-32 ("any open_clip architecture works the same way") in seconds. The
full-size ViT-B-32 is covered by test_clip_parity.py. Import tests that need
no torch build their folders from the tiny ONNX fixtures.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from photovault.analyze.clip import Clip
from photovault.models.install import import_model, install
from photovault.models.session import SessionFactory
from photovault.models.store import (
    InstalledModel,
    Manifest,
    ModelError,
    ModelStore,
)

ARCH = "PV-Tiny-ViT"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def open_clip() -> ModuleType:
    module = pytest.importorskip("open_clip")
    pytest.importorskip("torch")
    return module


@pytest.fixture(scope="module")
def checkpoint(open_clip: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight checkpoint of the tiny architecture, saved as users' files are."""
    import torch

    folder = tmp_path_factory.mktemp("tiny-clip")
    config = folder / f"{ARCH}.json"
    config.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    path = folder / "tiny-random.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from photovault.models.export.clip import export

    out = tmp_path_factory.mktemp("export")
    export(out, ARCH, str(checkpoint), ("fp32", "fp16", "int8"))
    return out


def read_manifest(folder: Path) -> Manifest:
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return Manifest.from_dict(data, str(folder))


def test_an_export_records_what_the_analyzer_needs_to_reproduce_the_model(
    exported: Path,
) -> None:
    manifest = read_manifest(exported)
    assert manifest.task == "clip"
    assert manifest.architecture == ARCH
    assert manifest.name == "pv-tiny-vit-tiny-random"
    assert manifest.input_size == 32
    assert manifest.embedding_dim == 16
    assert manifest.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert manifest.std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    extra = manifest.extra
    assert extra["context_length"] == 77
    assert extra["tokenizer"] == "clip-bpe"
    assert extra["resize_mode"] == "shortest"
    assert extra["gpu_only_variants"] == ["fp16"]
    assert extra["text_trim"] is True
    for f in manifest.files:
        assert next(iter(f.outputs.values())) == [None, 16]
        if f.role == "text":  # any batch, any length up to the context
            assert next(iter(f.inputs.values())) == [None, None]
    assert "sha256" in manifest.source


def test_the_fp32_onnx_towers_compute_what_torch_and_open_clip_compute(exported: Path) -> None:
    checks = read_manifest(exported).extra["checks"]
    assert checks["onnx_vs_torch"]["image_min_cosine"] > 0.99999
    assert checks["onnx_vs_torch"]["text_min_cosine"] > 0.99999
    # The text tower takes queries cut after their end token, and gives what torch
    # gives for the same query padded to 77 tokens.
    assert checks["onnx_vs_torch"]["text_trimmed_min_cosine"] > 0.99999
    ours = checks["ours_vs_open_clip"]
    assert ours["tokens_equal"] is True
    assert ours["text_min_cosine"] > 0.99999
    # 32-px input magnifies resampling differences; ViT-B-32 is held to 0.999.
    assert ours["image_min_cosine"] > 0.998


def test_each_reduced_precision_variant_is_installed_or_refused_with_its_cosine(
    exported: Path,
) -> None:
    manifest = read_manifest(exported)
    refused = manifest.extra.get("refused", {})
    for variant in ("fp16", "int8"):
        figures = manifest.extra["checks"][variant]
        worst = min(figures.values())
        if variant in manifest.variants:
            assert worst >= 0.998
            assert (exported / f"image.{variant}.onnx").is_file()
        else:
            assert variant in refused
            assert not (exported / f"image.{variant}.onnx").exists()
    assert manifest.extra["checks"]["fp16"]["image_min_cosine"] > 0.9999


def test_an_int8_variant_below_the_threshold_is_not_installed(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models.export import clip as export_clip

    monkeypatch.setattr(export_clip, "VARIANT_MIN_COSINE", 1.01)
    manifest = export_clip.export(tmp_path, ARCH, str(checkpoint), ("fp32", "int8"))
    assert manifest.variants == ["fp32"]
    assert "< 1.01" in manifest.extra["refused"]["int8"]
    assert "image_min_cosine" in manifest.extra["checks"]["int8"]
    assert not list(tmp_path.glob("*.int8.onnx"))


def test_an_exported_folder_imports_and_embeds_through_the_analyzer(
    exported: Path, tmp_path: Path
) -> None:
    manifest = import_model(tmp_path / "models", "clip", exported)
    model = ModelStore(tmp_path / "models").get(manifest.name, kind="clip")
    clip = Clip(model, "fp32", SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))
    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    images = clip.embed_pixels([photo, photo[::-1]])
    texts = clip.encode_text(["a cat", "a dog"])
    assert images.shape == texts.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)


def test_install_from_a_checkpoint_file_puts_a_validated_model_in_the_store(
    checkpoint: Path, tmp_path: Path
) -> None:
    manifest = install(
        tmp_path,
        "clip",
        ARCH,
        {"pretrained": str(checkpoint), "variants": "fp32", "name": "tiny"},
    )
    assert manifest.name == "tiny"
    assert ModelStore(tmp_path).verify("tiny").variants == ["fp32"]


def test_the_gpu_only_fp16_variant_is_refused_on_a_cpu_only_factory(exported: Path) -> None:
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0)
    with pytest.raises(ModelError, match=r"fp16 .* is for GPUs"):
        Clip(InstalledModel(exported, read_manifest(exported)), "fp16", factory)


def test_an_unknown_architecture_is_refused_by_name(open_clip: ModuleType, tmp_path: Path) -> None:
    from photovault.models.export.clip import export

    with pytest.raises(ModelError, match="unknown open_clip architecture 'ViT-Nope'"):
        export(tmp_path, "ViT-Nope", "laion2b_s34b_b79k")


def test_a_missing_checkpoint_file_is_named(open_clip: ModuleType, tmp_path: Path) -> None:
    from photovault.models.export.clip import export

    with pytest.raises(ModelError, match="checkpoint file not found"):
        export(tmp_path, "ViT-B-32", str(tmp_path / "nope.pt"))


def test_an_unknown_pretrained_tag_lists_the_known_ones(open_clip: ModuleType) -> None:
    from photovault.models.export.clip import check_hub

    with pytest.raises(ModelError, match="laion2b_s34b_b79k"):
        check_hub("ViT-B-32", "no-such-tag")


def test_without_network_a_tag_install_fails_within_seconds_saying_how_to_import(
    open_clip: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 192.0.2.1 is TEST-NET-1: never routed, so the probe has to time out.
    monkeypatch.setenv("HF_ENDPOINT", "http://192.0.2.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from photovault.models.export import clip as export_clip

    monkeypatch.setattr(export_clip, "HUB_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        install(tmp_path, "clip", "ViT-B-32", {"pretrained": "laion2b_s34b_b79k"})
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "--pretrained /path/to/file" in message
    assert "vaultctl models import clip DIR" in message


def test_hf_hub_offline_fails_at_once(
    open_clip: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models.export.clip import check_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set"):
        check_hub("ViT-B-32", "laion2b_s34b_b79k")


# --- import checks that need no torch -----------------------------------------------


def test_a_clip_install_without_pretrained_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="--pretrained"):
        install(tmp_path, "clip", "ViT-B-32", {})


def test_unknown_clip_install_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown install option.*fast"):
        install(tmp_path, "clip", "ViT-B-32", {"pretrained": "x", "fast": True})


def make_clip_dir(tiny_models: ModuleType, folder: Path, text_dim: int = 8, **extra: Any) -> Path:
    return tiny_models.build_clip_dir(folder, "hand-made-clip", text_dim, **extra)


def test_a_hand_exported_folder_with_a_complete_manifest_imports(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    src = make_clip_dir(tiny_models, tmp_path / "src")
    assert import_model(tmp_path / "models", "clip", src).name == "hand-made-clip"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"tokenizer": "sentencepiece"}, "tokenizer must be 'clip-bpe'"),
        ({"tokenizer": "hf"}, "tokenizer_file must name one of extra.data_files"),
        ({"family": "align"}, "family 'align' must be one of"),
        ({"context_length": 64}, "does not match context_length 64"),
        ({"context_length": None}, "context_length must be a positive integer"),
        ({"resize_mode": "letterbox"}, "resize_mode 'letterbox' is not supported"),
        ({"vocab_size": 32000}, "vocab_size 32000"),
    ],
)
def test_an_import_whose_manifest_the_analyzer_cannot_honour_is_refused(
    tiny_models: ModuleType, tmp_path: Path, extra: dict[str, Any], reason: str
) -> None:
    src = make_clip_dir(tiny_models, tmp_path / "src", **extra)
    with pytest.raises(ModelError, match=reason):
        import_model(tmp_path / "models", "clip", src)
    assert not (tmp_path / "models" / "hand-made-clip").exists()


def test_towers_of_different_widths_are_refused_at_import(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    src = make_clip_dir(tiny_models, tmp_path / "src", text_dim=12)
    with pytest.raises(ModelError, match=r"text.onnx: output must be \[batch, 8\]"):
        import_model(tmp_path / "models", "clip", src)


def test_a_folder_without_a_manifest_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    shutil.copyfile(__file__, tmp_path / "src" / "notes.txt")
    with pytest.raises(ModelError, match=r"no manifest.json \(is this an exported"):
        import_model(tmp_path / "models", "clip", tmp_path / "src")
