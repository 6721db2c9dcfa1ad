"""CLIP in the daemon with a tiny model built by the test (real weights cannot be had here):
import while running, background re-embedding, semantic search, `vaultctl embed`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.photos import write_jpeg

pytest.importorskip("onnx")


def test_a_clip_model_imported_while_running_embeds_the_library_and_powers_search(
    tmp_path: Path, vault_factory, tiny_models
) -> None:
    vault = vault_factory(analyzers=["metadata", "clip"])
    for i in range(4):
        write_jpeg(tmp_path / "photos" / f"{i}.jpg", 900 + i)
    vault.wait_idle(expect_done=4)
    r = vault.ctl("embed", "text", "a dog", check=False)
    assert r.returncode == 2 and "no CLIP model" in r.stderr

    src = tiny_models.build_clip_dir(tmp_path / "export")
    out = vault.ctl("--config", str(vault.config), "models", "import", "clip", str(src)).stdout
    assert "imported tiny-clip" in out
    listed = json.loads(vault.ctl("--config", str(vault.config), "models", "list", "--json").stdout)
    assert [m["name"] for m in listed] == ["tiny-clip"]

    photo = tmp_path / "photos" / "2.jpg"
    vault.wait_for(
        lambda: "clip" in (vault.show(photo).get("analyzers") or ""),
        60,
        "old photos re-embedded in the background",
    )
    vault.wait_idle(expect_done=4)
    text = json.loads(vault.ctl("embed", "text", "a dog", "--json").stdout)
    assert text["model"] == "tiny-clip" and len(text["vector"]) == 8
    image = json.loads(vault.ctl("embed", "image", str(photo), "--json").stdout)
    assert len(image["vector"]) == 8
    assert abs(sum(v * v for v in image["vector"]) - 1.0) < 1e-3  # L2-normalised

    def semantic() -> list[dict]:
        r = vault.ctl("search", "a dog on the beach", "--json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else []

    vault.wait_for(lambda: len(semantic()) == 4, 30, "every photo ranked by meaning")
    scores = [x["score"] for x in semantic()]
    assert scores == sorted(scores, reverse=True)
    st = vault.status()
    (clip,) = [a for a in st["analyzers"]["active"] if a["name"] == "clip"]
    assert clip["version"].startswith("1+tiny-clip")


def test_a_corrupt_clip_export_is_refused_at_import_naming_the_file(
    tmp_path: Path, vault_factory, tiny_models
) -> None:
    vault = vault_factory()
    src = tiny_models.build_clip_dir(tmp_path / "export")
    (src / "text.onnx").write_bytes(b"not a model")
    r = vault.ctl("--config", str(vault.config), "models", "import", "clip", str(src), check=False)
    assert r.returncode == 2 and "text.onnx" in r.stderr
