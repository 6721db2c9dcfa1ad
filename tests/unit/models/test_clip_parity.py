"""Parity: our CLIP path against open_clip's own, for the same ViT-B-32 weights.

Ours: the ONNX towers written by `models install clip ... --pretrained PATH`,
run through analyze/clip.py (our PIL preprocessing, our BPE tokenizer,
onnxruntime). Theirs: `open_clip.create_model_and_transforms` on the same
checkpoint file (torchvision preprocessing, open_clip's tokenizer, torch).

Real weights cannot be downloaded here, so the checkpoint is a randomly
initialised ViT-B-32. A random network maps every photo to nearly the same
direction, so a per-photo cosine alone would pass even if preprocessing were
off; the tests therefore also compare the *centred* features (each minus the
mean over the photos, i.e. what tells photos apart) and the rankings a search
would produce.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest

from photovault.analyze.clip import Clip
from photovault.models.install import install
from photovault.models.session import SessionFactory
from photovault.models.store import ModelStore

pytestmark = pytest.mark.slow

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
TEXTS = (
    "an astronaut in a white space suit",
    "a ginger cat lying down",
    "a cup of coffee",
    "a rocket on the launch pad",
    "galaxies in deep space",
    "cells under a microscope",
    "a beach at sunset",
    "Café au lait & croissants",
)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both sides' raw (pre-normalisation) embeddings of PHOTOS and TEXTS."""
    open_clip: ModuleType = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    folder = tmp_path_factory.mktemp("vit-b-32")
    torch.manual_seed(1234)
    checkpoint = folder / "vit-b-32-random.pt"
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)

    store = folder / "models"
    manifest = install(
        store, "clip", "ViT-B-32", {"pretrained": str(checkpoint), "variants": "fp32"}
    )
    model = ModelStore(store).get(manifest.name, kind="clip")
    clip = Clip(model, "fp32", SessionFactory(["CPUExecutionProvider"], 2, 1, 600.0))
    photos = [np.ascontiguousarray(getattr(data, name)()[..., :3]) for name in PHOTOS]
    ours_images = clip.embed_pixels(photos, normalize=False)
    ours_texts = clip.encode_text(list(TEXTS), normalize=False)
    clip.close()

    reference, _, preprocess = open_clip.create_model_and_transforms(
        "ViT-B-32", pretrained=str(checkpoint)
    )
    reference.eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        batch = torch.stack([preprocess(Image.fromarray(p)) for p in photos])
        theirs_images = reference.encode_image(batch).numpy()
        theirs_texts = reference.encode_text(tokenizer(list(TEXTS))).numpy()
    return {
        "manifest": manifest,
        "ours_images": ours_images,
        "ours_texts": ours_texts,
        "theirs_images": theirs_images,
        "theirs_texts": theirs_texts,
    }


def test_each_photo_embeds_like_open_clip_to_cosine_0_999(embeddings: dict[str, Any]) -> None:
    agreement = cosines(embeddings["ours_images"], embeddings["theirs_images"])
    print("per-photo cosine ours vs open_clip:", np.round(agreement, 6))
    assert agreement.min() >= 0.999


def test_each_text_embeds_like_open_clip_to_cosine_0_999(embeddings: dict[str, Any]) -> None:
    agreement = cosines(embeddings["ours_texts"], embeddings["theirs_texts"])
    print("per-text cosine ours vs open_clip:", np.round(agreement, 6))
    assert agreement.min() >= 0.999


def test_what_tells_photos_apart_agrees_with_open_clip(embeddings: dict[str, Any]) -> None:
    ours = embeddings["ours_images"]
    theirs = embeddings["theirs_images"]
    # Without the shared direction, only what differs between photos is compared.
    centred = cosines(ours - ours.mean(0), theirs - theirs.mean(0))
    spread = 1 - cosines(theirs, np.repeat(theirs.mean(0, keepdims=True), len(theirs), 0))
    print("centred cosine:", np.round(centred, 5), "photo spread (1 - cos to mean):", spread)
    assert centred.min() >= 0.99


def test_a_search_ranks_photos_and_texts_as_open_clip_does(embeddings: dict[str, Any]) -> None:
    ours = unit(embeddings["ours_texts"]) @ unit(embeddings["ours_images"]).T
    theirs = unit(embeddings["theirs_texts"]) @ unit(embeddings["theirs_images"]).T
    # texts -> photos (search) and photos -> texts (zero-shot tags)
    np.testing.assert_array_equal(np.argsort(-ours, axis=1), np.argsort(-theirs, axis=1))
    np.testing.assert_array_equal(np.argsort(-ours, axis=0), np.argsort(-theirs, axis=0))


def test_the_manifest_records_the_parity_measured_at_install(embeddings: dict[str, Any]) -> None:
    manifest = embeddings["manifest"]
    assert manifest.embedding_dim == 512
    assert manifest.input_size == 224
    assert manifest.extra["context_length"] == 77
    parity = manifest.extra["checks"]["ours_vs_open_clip"]
    assert parity["tokens_equal"] is True
    assert parity["image_min_cosine"] >= 0.999
