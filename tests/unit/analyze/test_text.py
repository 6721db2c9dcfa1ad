"""The `text` analyzer on rendered receipts and signs and on real photos without text.

The model is installed from the rapidocr wheel (no network) once per module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import textimages
from photovault.analyze.base import AnalysisItem, AnalyzerError
from photovault.analyze.context import AnalyzerContext
from photovault.analyze.text import TextAnalyzer, create
from photovault.config import Settings, TextSettings
from photovault.media.decode import decode_image
from photovault.media.types import DecodedImage, PhotoMetadata
from photovault.models.export.text import install
from photovault.models.session import SessionFactory
from photovault.models.store import ModelError, ModelStore

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> AnalyzerContext:
    root = tmp_path_factory.mktemp("text-models")
    install(root / "models", "pp-ocrv6")
    factory = SessionFactory(["CPUExecutionProvider"], 2, 1, 600.0)
    return AnalyzerContext(root, ModelStore(root / "models"), factory)


@pytest.fixture(scope="module")
def analyzer(context: AnalyzerContext) -> TextAnalyzer:
    return create(None, context)


def item(
    pixels: np.ndarray | Image.Image,
    orientation: int = 1,
    stored_size: tuple[int, int] | None = None,
    name: str = "photo.jpg",
    camera: str | None = "Pixel 7",
    mime: str = "image/jpeg",
) -> AnalysisItem:
    px = np.ascontiguousarray(
        np.asarray(pixels.convert("RGB") if isinstance(pixels, Image.Image) else pixels)
    )
    size = stored_size or (px.shape[1], px.shape[0])
    return AnalysisItem(
        1,
        Path(name),
        "0" * 64,
        DecodedImage(px, size, orientation),
        PhotoMetadata(camera=camera, mime=mime),
    )


def read(analyzer: TextAnalyzer, it: AnalysisItem) -> dict:
    (result,) = analyzer.analyze([it])
    assert isinstance(result, dict), result
    return result


def joined(result: dict) -> str:
    return "\n".join(line["text"] for line in result["lines"])


def test_a_clean_receipt_reads_in_order_with_the_shop_name_and_is_tagged_receipt(
    analyzer: TextAnalyzer,
) -> None:
    receipt = textimages.receipt(0)
    result = read(analyzer, item(receipt.image))
    assert textimages.cer(joined(result), "\n".join(receipt.lines)) <= 0.05
    assert result["lines"][0]["text"] == receipt.shop
    assert result["model"] == "pp-ocrv6"
    assert result["document"] == "receipt"
    assert {t["tag"] for t in result["tags"]} == {"Documents", "Documents|Receipt"}
    assert all(t["source"] == "text" for t in result["tags"])


@pytest.mark.parametrize(("seed", "angle"), [(1, 6.0), (2, -11.0), (3, 3.0)])
def test_a_photographed_receipt_reads_despite_tilt_perspective_blur_and_jpeg(
    analyzer: TextAnalyzer, seed: int, angle: float
) -> None:
    receipt = textimages.receipt(seed)
    photo = textimages.photographed(receipt.image, angle=angle, seed=seed, blur=0.8, quality=70)
    result = read(analyzer, item(photo))
    assert textimages.cer(joined(result), "\n".join(receipt.lines)) <= 0.15
    assert receipt.shop.replace(" ", "") in joined(result).replace(" ", "")
    assert result["document"] == "receipt"


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_a_receipt_photographed_sideways_or_upside_down_reads_in_reading_order(
    analyzer: TextAnalyzer, angle: int
) -> None:
    receipt = textimages.receipt(1)
    photo = textimages.photographed(receipt.image, angle=angle, seed=angle)
    result = read(analyzer, item(photo))
    assert textimages.cer(joined(result), "\n".join(receipt.lines)) <= 0.15
    assert result["lines"][0]["text"].replace(" ", "") == receipt.shop.replace(" ", "")


def test_a_sign_reads_its_words_but_is_no_document(analyzer: TextAnalyzer) -> None:
    sign = textimages.sign()
    photo = textimages.photographed(sign.image, angle=-4, seed=5)
    result = read(analyzer, item(photo))
    assert [line["text"] for line in result["lines"]] == list(sign.lines)
    assert result["document"] is None and result["tags"] == []


def test_a_text_heavy_png_without_camera_is_a_screenshot(analyzer: TextAnalyzer) -> None:
    receipt = textimages.receipt(2)
    screen = Image.new("RGB", (receipt.image.width + 40, receipt.image.height + 200), "white")
    screen.paste(receipt.image.convert("L").convert("RGB"), (20, 100))
    result = read(analyzer, item(screen, name="Screenshot_2024.png", camera=None, mime="image/png"))
    assert result["document"] == "screenshot"
    assert "Documents|Screenshot" in {t["tag"] for t in result["tags"]}


def test_a_page_of_prose_is_tagged_text(analyzer: TextAnalyzer) -> None:
    from skimage import data

    result = read(analyzer, item(np.stack([data.page()] * 3, axis=-1)))
    assert "Region-based segmentation" in joined(result)
    assert result["document"] == "text"


@pytest.mark.parametrize(
    "path",
    sorted((FIXTURES / "faces").glob("*.jpg"))
    + sorted((FIXTURES / "faces" / "labelled").glob("*.jpg")),
    ids=lambda p: p.name,
)
def test_a_real_photo_without_text_gets_no_text(analyzer: TextAnalyzer, path: Path) -> None:
    result = read(analyzer, item(decode_image(path, 1024).pixels))
    assert result["tags"] == [] and result["document"] is None
    assert len(result["lines"]) <= 1
    assert all(len(line["text"]) <= 4 for line in result["lines"])


def test_boxes_are_fractions_of_the_stored_frame_of_an_oriented_jpeg(
    analyzer: TextAnalyzer, tmp_path: Path
) -> None:
    """The sign is stored turned 90° counter-clockwise with EXIF orientation 6 (turn
    clockwise to view): its first line's box must land where it sits in the stored file."""
    sign = textimages.sign()
    upright = textimages.on_table(sign.image)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways phone stores
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, "JPEG", quality=90, exif=exif)
    decoded = decode_image(path, 1024)
    assert decoded.orientation == 6 and decoded.stored_size == stored.size
    result = read(analyzer, AnalysisItem(1, path, "0" * 64, decoded, PhotoMetadata(camera="X")))
    assert [line["text"] for line in result["lines"]] == list(sign.lines)
    x, y, w, h = result["lines"][0]["box"]
    assert h > w  # the line runs top to bottom in the stored frame
    # Where the big line is in the stored image: the table around the sign shifts it.
    pad_x = (upright.width - sign.image.width) / 2
    pad_y = (upright.height - sign.image.height) / 2
    # Upright line (60..140 px down the sign) -> stored: ROTATE_90 maps upright (u, v)
    # to stored (v, 1 - u); the line's vertical band becomes a horizontal one.
    top = (pad_y + 60) / upright.height
    bottom = (pad_y + 140) / upright.height
    assert x == pytest.approx(top, abs=0.05) and x + w == pytest.approx(bottom, abs=0.05)
    assert y > 0.1 and y + h < 0.9
    assert pad_x > 0


def test_an_odd_image_fails_that_photo_only(analyzer: TextAnalyzer) -> None:
    receipt = textimages.receipt(3)
    grey = np.zeros((40, 30), dtype=np.uint8)
    tiny = np.zeros((4, 4, 3), dtype=np.uint8)
    results = analyzer.analyze([item(grey), item(receipt.image), item(tiny)])
    assert isinstance(results[0], AnalyzerError) and isinstance(results[2], AnalyzerError)
    assert isinstance(results[1], dict) and results[1]["lines"]


def test_without_a_text_model_the_analyzer_fails_to_load_naming_the_install_command(
    tmp_path: Path,
) -> None:
    context = AnalyzerContext(tmp_path, ModelStore(tmp_path / "models"), SessionFactory())
    with pytest.raises(ModelError, match="vaultctl models install text pp-ocrv6"):
        create(None, context)


def test_a_language_the_model_does_not_read_is_refused_naming_the_setting(
    context: AnalyzerContext, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    src = context.model_store.get("pp-ocrv6").path
    shutil.copytree(src, tmp_path / "v4")
    manifest = json.loads((tmp_path / "v4" / "manifest.json").read_text())
    manifest["extra"]["languages"] = ["en", "zh"]
    (tmp_path / "v4" / "manifest.json").write_text(json.dumps(manifest))
    store.import_dir(tmp_path / "v4", kind="text")
    narrow = AnalyzerContext(tmp_path, store, context.session_factory)
    with pytest.raises(ModelError, match=r"\[text\] languages: .* does not read de"):
        create(TextSettings(languages=["en", "de"]), narrow)


def test_the_registry_loads_text_with_the_daemons_settings(context: AnalyzerContext) -> None:
    from photovault.analyze import registry

    loaded = registry.load(["text"], Settings(text=TextSettings(image_side=1280)), context)
    assert [a.name for a in loaded.active] == ["text"] and loaded.image_side == 1280
    loaded.close()


def test_the_registry_disables_text_without_a_model_and_says_how_to_install_it(
    tmp_path: Path,
) -> None:
    from photovault.analyze import registry

    empty = AnalyzerContext(tmp_path, ModelStore(tmp_path / "models"), SessionFactory())
    loaded = registry.load(["text"], Settings(), empty)
    assert loaded.active == []
    assert "vaultctl models install text pp-ocrv6" in loaded.disabled["text"]
