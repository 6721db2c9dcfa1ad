"""Models in a running daemon: picked up without restart, broken ones disabled, not fatal."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers.photos import write_jpeg


def test_a_model_installed_while_running_is_picked_up_and_old_photos_get_tags(
    tmp_path: Path, vault_factory, real_tagger_store: Path
) -> None:
    vault = vault_factory(analyzers=["metadata", "tagger"])
    st = vault.status()
    (disabled,) = st["analyzers"]["disabled"]
    assert disabled["name"] == "tagger"
    assert "no tagger model installed" in disabled["reason"]
    photo = write_jpeg(tmp_path / "photos" / "a.jpg", 1)
    vault.wait_idle(expect_done=1)
    assert vault.show(photo)["tags"] == []

    shutil.copytree(real_tagger_store, tmp_path / "state" / "models", dirs_exist_ok=True)
    vault.wait_for(
        lambda: (
            [a["name"] for a in vault.status()["analyzers"]["active"]] == ["metadata", "tagger"]
        ),
        30,
        "tagger enabled after install",
    )
    vault.wait_for(lambda: vault.show(photo)["labels"], 60, "old photo analyzed by the tagger")
    assert vault.show(photo)["analyzers"] == "metadata:2,tagger:1"
    with vault.db() as db:
        # metadata was not run again: only the missing analyzer ran.
        row = db.execute("SELECT analysis_runs FROM content").fetchone()
        assert row[0] == 2


def test_a_broken_model_disables_its_analyzer_naming_the_file_while_others_run(
    tmp_path: Path, vault_factory, real_tagger_store: Path
) -> None:
    models = tmp_path / "state" / "models"
    shutil.copytree(real_tagger_store, models)
    onnx = next(models.rglob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:1000])  # truncated download
    vault = vault_factory(analyzers=["metadata", "tagger"])
    (disabled,) = vault.status()["analyzers"]["disabled"]
    assert disabled["name"] == "tagger"
    assert onnx.name in disabled["reason"]
    human = vault.ctl("status").stdout
    assert "disabled tagger" in human
    write_jpeg(tmp_path / "photos" / "b.jpg", 2)
    vault.wait_idle(expect_done=1)


def test_asking_for_cuda_here_runs_on_cpu_and_says_so(
    tmp_path: Path, vault_factory, real_tagger_store: Path
) -> None:
    vault = vault_factory(models_from=real_tagger_store, analyzers=["metadata", "tagger"])
    write_jpeg(tmp_path / "photos" / "c.jpg", 3)
    vault.wait_idle(expect_done=1, timeout=60)
    (tagger,) = [a for a in vault.status()["analyzers"]["active"] if a["name"] == "tagger"]
    assert tagger["provider"] == "CPUExecutionProvider"
    assert "CUDAExecutionProvider requested but not available" in vault.log()
