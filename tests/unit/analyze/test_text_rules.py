"""The text analyzer's pure parts: document rules, box mapping, reading order, decoding,
and the `[text]` settings. No model needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photovault.analyze import textdet
from photovault.analyze.base import AnalysisItem
from photovault.analyze.text import AMOUNT_RE, document_kind, oriented_to_stored, stored_box
from photovault.config import ConfigError, Settings, TextSettings, load
from photovault.media.types import DecodedImage, PhotoMetadata
from photovault.sidecar import geometry

RECEIPT = [
    "GREEN LEAF GROCERS",
    "48 Market Road, Leeds",
    "Bananas 1.20",
    "Whole milk 2L 1.45",
    "TOTAL 2.65",
    "CARD 2.65",
]


def photo(
    name: str = "IMG_1.jpg",
    camera: str | None = "Pixel 7",
    mime: str = "image/jpeg",
    size: tuple[int, int] = (8, 8),
):
    image = DecodedImage(np.zeros((8, 8, 3), np.uint8), size)
    return AnalysisItem(1, Path(name), "0", image, PhotoMetadata(camera=camera, mime=mime))


def test_amounts_with_a_total_word_make_a_receipt() -> None:
    assert document_kind(RECEIPT, 0.02, photo(), 0.08) == "receipt"


def test_amounts_with_a_currency_sign_make_a_receipt() -> None:
    lines = ["Cafe", "Tea €2.50", "Cake €3.10", "€5.60"]
    assert document_kind(lines, 0.02, photo(), 0.08) == "receipt"


def test_amounts_alone_do_not_make_a_receipt() -> None:
    lines = ["Timetable", "Dep 10.15", "Arr 11.40", "Dep 12.05"]
    assert document_kind(lines, 0.02, photo(), 0.08) is None


CHAT = ["Anna", "See you at the station", "Train leaves at ten", "OK great"]


def test_a_scanned_receipt_png_without_camera_is_a_receipt_not_a_screenshot() -> None:
    item = photo("scan_0001.png", camera=None, mime="image/png", size=(950, 5000))
    lines = ["SHELL", "FUEL 45.20", "CAR WASH 8.00", "TOTAL 53.20"]
    assert document_kind(lines, 0.02, item, 0.08) == "receipt"


def test_a_screenshot_of_a_receipt_app_with_prices_is_a_receipt() -> None:
    item = photo("Screenshot_2024.png", camera=None, mime="image/png", size=(1080, 2340))
    assert document_kind(RECEIPT, 0.02, item, 0.08) == "receipt"


@pytest.mark.parametrize("size", [(1080, 2340), (1170, 2532), (1920, 1080), (2880, 1800)])
def test_a_png_without_camera_of_a_screens_shape_is_a_screenshot(size: tuple[int, int]) -> None:
    item = photo("IMG_2031.png", camera=None, mime="image/png", size=size)
    assert document_kind(CHAT, 0.02, item, 0.08) == "screenshot"


@pytest.mark.parametrize("size", [(950, 5000), (1240, 1754), (300, 300), (100, 178)])
def test_a_png_without_camera_of_another_shape_is_no_screenshot(size: tuple[int, int]) -> None:
    item = photo("page.png", camera=None, mime="image/png", size=size)
    assert document_kind(CHAT, 0.02, item, 0.08) is None


def test_a_file_named_screenshot_is_one_whatever_its_shape() -> None:
    item = photo("Screenshot 2024-05-01.png", camera=None, mime="image/png", size=(812, 377))
    assert document_kind(CHAT, 0.02, item, 0.08) == "screenshot"


def test_bar_is_no_payment_word() -> None:
    lines = ["Bar Luna", "Opens 10.00", "Closes 22.00", "Happy hour 17.00"]
    assert document_kind(lines, 0.02, photo(), 0.08) is None


def test_amounts_with_thousands_separators_count() -> None:
    lines = ["Garage invoice", "Gearbox 1,234.56", "VAT 246.91", "TOTAL 1,481.47"]
    assert document_kind(lines, 0.02, photo(), 0.08) == "receipt"
    assert AMOUNT_RE.findall("TOTAL 1,234.56 and 12.345,67 then 3.50") == [
        "1,234.56",
        "12.345,67",
        "3.50",
    ]


def test_a_png_from_a_camera_is_no_screenshot() -> None:
    item = photo("x.png", camera="Canon EOS", mime="image/png")
    assert document_kind(["a b", "c d", "e f"], 0.02, item, 0.08) is None


def test_lines_covering_enough_of_the_photo_make_text() -> None:
    lines = ["Chapter one", "It was a dark night", "and the rain fell"]
    assert document_kind(lines, 0.2, photo(), 0.08) == "text"
    assert document_kind(lines, 0.01, photo(), 0.08) is None
    assert document_kind(lines * 4, 0.01, photo(), 0.08) == "text"


def test_many_single_words_on_a_small_share_are_scene_text_not_a_document() -> None:
    """A press backdrop: the same logo words read a dozen times over."""
    backdrop = ["HBO", "THRONES", "GAME OF", "WesterosVIP"] * 4
    assert document_kind(backdrop, 0.01, photo(), 0.08) is None
    assert document_kind(backdrop, 0.2, photo(), 0.08) == "text"  # a poster filling the photo


def test_the_detector_input_is_normalised_per_channel_in_the_images_bgr_order() -> None:
    """PaddleOCR normalises the decoded BGR image with ImageNet's mean and std taken in
    the order written, so the tiny detector's first channel (blue) uses 0.485 / 0.229."""
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    bgr = np.zeros((64, 64, 3), np.uint8)
    bgr[:] = (200, 100, 50)
    x = textdet.det_input(bgr, 64, 64, imagenet)
    assert x.shape == (1, 3, 64, 64)
    want = [(v / 255 - m) / s for v, m, s in zip((200, 100, 50), *imagenet, strict=True)]
    assert x[0, :, 10, 10] == pytest.approx(want, rel=1e-5)
    half = textdet.det_input(bgr, 64, 64)
    assert half[0, :, 10, 10] == pytest.approx([v / 127.5 - 1 for v in (200, 100, 50)], rel=1e-5)


def test_vietnamese_is_refused_by_the_config_no_model_writes_its_tone_marks() -> None:
    with pytest.raises(ValueError, match="vi"):
        TextSettings(languages=["vi"])


def test_two_lines_are_never_a_document() -> None:
    assert document_kind(["TOTAL 9.99", "CARD 9.99"], 0.9, photo(), 0.08) is None


@pytest.mark.parametrize("orientation", geometry.ORIENTATIONS)
def test_points_map_to_the_stored_frame_as_the_sidecar_geometry_does(orientation: int) -> None:
    for u, v in ((0.1, 0.2), (0.9, 0.3), (0.5, 0.75)):
        got = oriented_to_stored(u, v, orientation)
        want = geometry.oriented_point_to_stored(u, v, orientation)
        assert got == pytest.approx(want)


def test_a_quad_becomes_the_stored_box_around_it() -> None:
    quad = np.array([[10, 20], [60, 20], [60, 30], [10, 30]], np.float32)  # in 100x50 upright
    assert stored_box(quad, 100, 50, 1) == pytest.approx((0.1, 0.4, 0.5, 0.2))
    # Orientation 6: upright (u, v) is stored (v, 1 - u).
    assert stored_box(quad, 100, 50, 6) == pytest.approx((0.4, 0.4, 0.2, 0.5))


def _quad(x: float, y: float, w: float, h: float, angle: float = 0.0) -> np.ndarray:
    pts = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]], np.float32)


def test_reading_order_is_rows_top_down_then_left_to_right() -> None:
    quads = [_quad(300, 52, 60, 20), _quad(10, 10, 200, 20), _quad(10, 50, 100, 20)]
    assert textdet.reading_order(quads) == [1, 2, 0]


def test_reading_order_keeps_item_and_price_on_one_row_in_a_tilted_photo() -> None:
    angle = np.radians(8)
    quads = [
        _quad(10, 100, 120, 20, angle),
        _quad(400, 100, 50, 20, angle),  # the price: far right, so lower once tilted
        _quad(10, 140, 120, 20, angle),
    ]
    assert textdet.reading_order(quads) == [0, 1, 2]


def test_ctc_decoding_drops_blanks_and_repeats() -> None:
    charset = ["<blank>", "a", "b", " "]
    steps = [1, 1, 0, 1, 2, 3, 0, 2]  # a a _ a b ' ' _ b
    probs = np.full((1, len(steps), 4), 0.01, np.float32)
    for t, k in enumerate(steps):
        probs[0, t, k] = 0.97
    ((text, score),) = textdet.ctc_decode(probs, charset)
    assert text == "aab b" and score == pytest.approx(0.97)


def test_detection_scales_the_short_side_to_736_and_caps_the_long_side() -> None:
    assert textdet.det_input(np.zeros((1024, 195, 3), np.uint8)).shape == (1, 3, 2560, 480)
    assert textdet.det_input(np.zeros((3000, 4000, 3), np.uint8)).shape == (1, 3, 736, 992)
    assert textdet.det_input(np.zeros((300, 400, 3), np.uint8)).shape == (1, 3, 736, 992)


def test_the_gate_sizes_a_tall_receipt_by_area_so_its_print_stays_readable() -> None:
    # 195x1024 (a 950x5000 scan as decoded): the long side is not cut to 320.
    _, _, h, w = textdet.gate_input(np.zeros((1024, 195, 3), np.uint8), 320).shape
    assert w >= 160 and h >= 800
    _, _, h, w = textdet.gate_input(np.zeros((768, 1024, 3), np.uint8), 320).shape
    assert h * w <= 1.1 * 320 * 320 * 4 / 3


def test_text_pixels_count_a_merged_blob_of_lines_but_not_faint_regions() -> None:
    prob = np.zeros((1, 1, 100, 100), np.float32)
    prob[0, 0, 10:40, 10:90] = 0.9  # dense lines merged into one region
    prob[0, 0, 60:70, 10:30] = 0.4  # a faint region: scores below the threshold
    assert textdet.text_pixels(prob, 0.5) == 30 * 80


@pytest.mark.parametrize(
    ("share", "lines", "has_text"),
    [(0.03, 5, True), (0.3, 40, True), (0.006, 1, True), (0.22, 0, False), (0.002, 3, False)],
)
def test_the_gate_wants_enough_text_pixels_and_one_line_shaped_region(
    share: float, lines: int, has_text: bool
) -> None:
    from photovault.analyze.textocr import Gate

    assert Gate(share, lines, tall=False).has_text is has_text


def test_a_gate_threshold_above_the_box_threshold_is_refused() -> None:
    from photovault.analyze.textocr import OcrSettings

    with pytest.raises(ValueError, match="box threshold"):
        OcrSettings(box_thresh=0.5, gate_thresh=0.65)


def test_a_tall_box_is_a_turned_line() -> None:
    assert textdet.is_tall(_quad(0, 0, 20, 200)) and not textdet.is_tall(_quad(0, 0, 200, 20))


def test_text_settings_refuse_an_unknown_language_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "vaultd.toml"
    path.write_text('[text]\nlanguages = ["en", "klingon"]\n')
    with pytest.raises(ConfigError, match=r"\[text\] languages: .*'klingon'"):
        load(path, environ={}, check_paths=False)


def test_text_settings_default_to_english() -> None:
    assert Settings().text == TextSettings() and TextSettings().languages == ["en"]
