"""The real EfficientNet-Lite0 tagger on scikit-image's bundled photos.

These photos are our stand-in for an ImageNet validation set (which we do not
have here); they check that export, preprocessing and label mapping are right,
not the model's accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photovault.analyze.context import AnalyzerContext
from photovault.analyze.tagger import Tagger, create
from photovault.media.types import DecodedImage, PhotoMetadata
from photovault.models.session import SessionFactory
from photovault.models.store import ModelStore

skimage_data = pytest.importorskip("skimage.data")

CAT_SYNSETS = {"n02123045", "n02123159", "n02123394", "n02123597", "n02124075", "n02127052"}


@pytest.fixture(scope="module")
def tagger(real_tagger_store: Path) -> Tagger:
    context = AnalyzerContext(
        real_tagger_store.parent,
        ModelStore(real_tagger_store),
        SessionFactory(["CUDAExecutionProvider", "CPUExecutionProvider"], 2, 1, 60.0),
    )
    return create({}, context)


def tag(tagger: Tagger, pixels: np.ndarray) -> dict[str, Any]:
    from photovault.analyze.base import AnalysisItem

    image = DecodedImage(pixels=pixels, stored_size=(pixels.shape[1], pixels.shape[0]))
    (result,) = tagger.analyze([AnalysisItem(1, Path("x.jpg"), "0", image, PhotoMetadata())])
    assert isinstance(result, dict)
    return result


def synsets(result: dict[str, Any]) -> list[str]:
    return [label["synset"] for label in result["labels"]]


def tags(result: dict[str, Any]) -> list[str]:
    return [t["tag"] for t in result["tags"]]


def test_chelsea_the_cat_gets_a_cat_synset_in_the_top_five(tagger: Tagger) -> None:
    result = tag(tagger, skimage_data.chelsea())
    assert CAT_SYNSETS & set(synsets(result))


def test_chelsea_the_cat_is_tagged_animals_cat_first(tagger: Tagger) -> None:
    result = tag(tagger, skimage_data.chelsea())
    assert tags(result)[0] == "Animals|Cat"
    assert result["tags"][0]["confidence"] > 0.5


def test_the_coffee_photo_is_labelled_espresso_or_cup_first(tagger: Tagger) -> None:
    result = tag(tagger, skimage_data.coffee())
    assert result["labels"][0]["label"] in {"espresso", "cup", "coffee mug"}
    assert tags(result)[0] == "Food|Drink"


def test_the_rocket_photo_is_labelled_as_a_rocket_in_the_top_three(tagger: Tagger) -> None:
    result = tag(tagger, skimage_data.rocket())
    top3 = {label["label"] for label in result["labels"][:3]}
    assert top3 & {"space shuttle", "missile", "projectile"}
    assert "Vehicles|Rocket" in tags(result)


def test_the_astronaut_portrait_is_not_tagged_as_an_animal(tagger: Tagger) -> None:
    result = tag(tagger, skimage_data.astronaut())
    assert not [t for t in tags(result) if t.startswith("Animals|")]


def test_the_tagger_runs_on_cpu_when_cuda_is_asked_for_but_missing(tagger: Tagger) -> None:
    tag(tagger, skimage_data.coffee())
    assert tagger.status()["provider"] in {"CPUExecutionProvider", "CUDAExecutionProvider"}
