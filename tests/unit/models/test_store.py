from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from photovault.models.store import (
    ModelError,
    ModelStore,
    import_model,
    list_models,
    remove,
    sha256_file,
)


def _edit_manifest(src: Path, **changes: object) -> None:
    path = src / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _edit_file_entry(src: Path, **changes: object) -> None:
    path = src / "manifest.json"
    data = json.loads(path.read_text())
    data["files"][0].update(changes)
    path.write_text(json.dumps(data))


def test_import_installs_a_valid_model_and_list_shows_it(tagger_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "models"
    manifest = import_model(store_dir, "tagger", tagger_dir)
    rows = list_models(store_dir)
    assert manifest.name == "tiny-tagger"
    assert [(r["name"], r["task"], r["variants"]) for r in rows] == [
        ("tiny-tagger", "tagger", ["fp32"])
    ]
    assert (store_dir / "tiny-tagger" / "model.onnx").is_file()


def test_an_installed_model_passes_full_verification(tagger_dir: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.import_dir(tagger_dir)
    assert store.verify("tiny-tagger").num_classes == 10


def test_import_leaves_no_staging_folder_behind(tagger_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "models"
    import_model(store_dir, "tagger", tagger_dir)
    assert sorted(p.name for p in store_dir.iterdir()) == ["tiny-tagger"]


def test_a_file_whose_sha256_differs_is_refused_naming_the_file(
    tagger_dir: Path, tmp_path: Path
) -> None:
    _edit_file_entry(tagger_dir, sha256="0" * 64)
    with pytest.raises(ModelError, match=r"model\.onnx: sha256 .* does not match"):
        import_model(tmp_path / "models", "tagger", tagger_dir)


def test_a_truncated_file_is_refused(tagger_dir: Path, tmp_path: Path) -> None:
    onnx_file = tagger_dir / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:100])
    with pytest.raises(ModelError, match=r"model\.onnx: size 100 bytes.*truncated"):
        import_model(tmp_path / "models", "tagger", tagger_dir)


def test_a_corrupt_file_with_a_matching_hash_is_refused_because_it_does_not_load(
    tagger_dir: Path, tmp_path: Path
) -> None:
    onnx_file = tagger_dir / "model.onnx"
    onnx_file.write_bytes(b"garbage, not a protobuf")
    _edit_file_entry(tagger_dir, sha256=sha256_file(onnx_file), bytes=onnx_file.stat().st_size)
    with pytest.raises(ModelError, match=r"model\.onnx: does not load as ONNX"):
        import_model(tmp_path / "models", "tagger", tagger_dir)


def test_a_file_whose_shapes_differ_from_the_manifest_is_refused(
    tiny_models: ModuleType, tagger_dir: Path, tmp_path: Path
) -> None:
    onnx_file = tagger_dir / "model.onnx"
    tiny_models.build_classifier(onnx_file, num_classes=10, side=16)
    _edit_file_entry(tagger_dir, sha256=sha256_file(onnx_file), bytes=onnx_file.stat().st_size)
    with pytest.raises(ModelError, match=r"model\.onnx: inputs are .*16, 16.*manifest says"):
        import_model(tmp_path / "models", "tagger", tagger_dir)


def test_a_manifest_whose_shapes_do_not_fit_the_task_is_refused(
    tagger_dir: Path, tmp_path: Path
) -> None:
    _edit_manifest(tagger_dir, num_classes=1000)
    with pytest.raises(ModelError, match=r"output must be \[batch, 1000\]"):
        import_model(tmp_path / "models", "tagger", tagger_dir)


def test_a_model_of_another_kind_is_refused(tagger_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a tagger model, not clip"):
        import_model(tmp_path / "models", "clip", tagger_dir)


def test_a_file_name_escaping_the_model_folder_is_refused(tagger_dir: Path, tmp_path: Path) -> None:
    _edit_file_entry(tagger_dir, path="../model.onnx")
    with pytest.raises(ModelError, match="must be a plain"):
        import_model(tmp_path / "models", "tagger", tagger_dir)


def test_a_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        import_model(tmp_path / "models", "tagger", tmp_path / "empty")


def test_importing_an_installed_name_again_needs_replace(tagger_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "models"
    import_model(store_dir, "tagger", tagger_dir)
    with pytest.raises(ModelError, match="already installed"):
        import_model(store_dir, "tagger", tagger_dir)
    import_model(store_dir, "tagger", tagger_dir, replace=True)
    assert [r["name"] for r in list_models(store_dir)] == ["tiny-tagger"]


def test_remove_deletes_the_model_folder(tagger_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "models"
    import_model(store_dir, "tagger", tagger_dir)
    remove(store_dir, "tiny-tagger")
    assert list_models(store_dir) == []
    assert list(store_dir.iterdir()) == []


def test_removing_a_model_that_is_not_installed_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not installed"):
        remove(tmp_path / "models", "nothing")


def test_get_of_a_missing_model_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="vaultctl models install tagger efficientnet-lite0"):
        ModelStore(tmp_path).get("efficientnet-lite0", kind="tagger")


def test_list_skips_folders_with_a_broken_manifest(tagger_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "models"
    import_model(store_dir, "tagger", tagger_dir)
    (store_dir / "broken").mkdir()
    (store_dir / "broken" / "manifest.json").write_text("{not json")
    assert [r["name"] for r in list_models(store_dir)] == ["tiny-tagger"]


def test_list_of_a_store_that_does_not_exist_is_empty(tmp_path: Path) -> None:
    assert list_models(tmp_path / "nothing") == []
