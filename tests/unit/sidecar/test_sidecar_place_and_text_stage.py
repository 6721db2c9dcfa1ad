"""The sidecar stage takes the place and the text from the stored results (#17, #18)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sidecar_helpers import exiftool_json, make_photo, needs_tools

from photovault.catalog.store import Catalog
from photovault.config import Settings, ShareSettings
from photovault.results import Place
from photovault.sidecar.stage import SidecarStage, build_content

PLACE = {"country_code": "PT", "country": "Portugal", "region": "Lisboa", "city": "Lisbon"}
TEXT = {
    "model": "ppocr-v4",
    "lines": [
        {"text": "PLUMBING & SONS", "box": [0.1, 0.1, 0.5, 0.05], "score": 0.97},
        {"text": "  ", "box": [0.1, 0.2, 0.5, 0.05], "score": 0.2},
        {"text": "Invoice 42", "box": [0.1, 0.3, 0.4, 0.05], "score": 0.95},
    ],
    "document": "receipt",
    "tags": [{"tag": "Documents|Receipt", "confidence": 0.9, "source": "text"}],
}


def test_build_content_carries_the_place_and_the_lines_joined_in_reading_order() -> None:
    results = {"metadata": {"width": 64, "place": PLACE}, "text": TEXT}

    built = build_content(results, [], "metadata:2,text:1")

    assert built.place == Place("PT", "Portugal", "Lisboa", "Lisbon")
    assert built.text == "PLUMBING & SONS\nInvoice 42"
    assert [k.path for k in built.keywords] == [("Documents", "Receipt")]


def test_build_content_knows_no_place_or_text_from_missing_or_failed_results() -> None:
    for results in (
        {},
        {"metadata": {"place": None}, "text": {"lines": []}},
        {"metadata": {"error": "boom"}, "text": {"error": "model missing"}},
        {"metadata": {"place": {"country": "Portugal"}}},  # no code: no place
    ):
        built = build_content(results, [], "")
        assert (built.place, built.text) == (None, None), results


@needs_tools
def test_a_photo_with_only_a_place_and_text_gets_a_sidecar(tmp_path: Path, writer) -> None:
    share = tmp_path / "photos"
    share.mkdir()
    settings = Settings(
        state_dir=tmp_path / "state", shares=[ShareSettings(name="photos", path=share)]
    )
    catalog = Catalog(settings.catalog_path)
    try:
        photo = make_photo(share, "receipt.jpg")
        st = photo.stat()
        catalog.observe("photos", "receipt.jpg", st.st_size, st.st_mtime_ns)
        (row,) = catalog.claim(1)
        text: dict[str, Any] = {**TEXT, "tags": []}
        catalog.store_content(
            hashlib.sha256(photo.read_bytes()).hexdigest(),
            "metadata:2,text:1",
            {"width": 64, "height": 48, "orientation": 1},
            {"metadata": {"width": 64, "height": 48, "place": PLACE}, "text": text},
            [(row.id, st.st_size, st.st_mtime_ns)],
        )
        row = catalog.get_by_id(row.id)
        stage = SidecarStage(catalog, settings, writer=writer)

        assert stage.write_one(row) == "written"
        data = exiftool_json(writer, share / "receipt.jpg.xmp")
        assert data["XMP-photoshop:City"] == "Lisbon"
        assert data["XMP-iptcCore:CountryCode"] == "PT"
        assert data["XMP-photovault:Text"] == "PLUMBING & SONS\nInvoice 42"
        assert "XMP-dc:Description" not in data
    finally:
        catalog.close()
