"""Hub-layout models (Immich's ONNX CLIP exports) installed without torch.

Built once per run from small RANDOM open_clip models (tests/helpers/hub_models.py):
a CLIP-BPE model, a SigLIP-style one (sigmoid scoring, squash resize, punctuation
removed) and a Multilingual-CLIP-style one (unigram tokenizer, attention mask).
Each is installed through `models import clip DIR` and through huggingface_hub's
offline cache (`--from-hub` with HF_HUB_OFFLINE=1); our runtime's embeddings
must equal the torch model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photovault.models.clip import ClipModel
from photovault.models.session import SessionFactory
from photovault.models.store import InstalledModel, ModelError, ModelStore

pytest.importorskip("tokenizers")

REPO = Path(__file__).resolve().parents[3]
TESTS = REPO / "tests"
TEXTS = [
    "a photo of a cat",
    "Café au lait & croissants",
    "two dogs playing in the snow",
    "日本の寺",
    "emoji 🎉🐱",
    "a long caption " * 30,
]
MULTILINGUAL = [
    "ein Foto von einer Katze auf dem Sofa",
    "uma foto de um gato no sofá",
    "der Geburtstagskuchen mit Kerzen",
    "rua da cidade à noite " * 20,
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Hub-layout folders and the torch models they were exported from."""
    pytest.importorskip("open_clip")
    pytest.importorskip("torch")
    from helpers import hub_models as hm

    root = tmp_path_factory.mktemp("hub")
    model = hm.tiny_open_clip("PV-Hub-Tiny", hm.TINY_CONFIG, root / "configs")

    clip_dir = root / "PV-Hub-Tiny__random"
    hm.export_open_clip(model, clip_dir, {**hm.TINY_CONFIG, "model": "PV-Hub-Tiny"})
    hm.clip_tokenizer_json(clip_dir)

    siglip_dir = root / "PV-Tiny-SigLIP__random"
    siglip_cfg = json.loads(json.dumps(hm.TINY_CONFIG))
    siglip_cfg["init_logit_bias"] = -10
    siglip_cfg["text_cfg"]["tokenizer_kwargs"] = {"clean": "canonicalize"}
    squash = {
        "size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bilinear",
        "resize_mode": "squash",
    }
    hm.export_open_clip(model, siglip_dir, siglip_cfg, squash)
    hm.clip_tokenizer_json(siglip_dir)

    mclip_dir = root / "XLM-Tiny-Vit-B-32"
    hm.export_open_clip(model, mclip_dir, hm.TINY_CONFIG, text=False)
    tokenizer = hm.unigram_tokenizer_json(mclip_dir)
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer)).get_vocab_size()
    tower = hm.mclip_text_tower(vocab, hm.TINY_CONFIG["embed_dim"])
    hm.export_mclip_text(tower, mclip_dir)
    return {
        "root": root,
        "model": model,
        "clip": clip_dir,
        "siglip": siglip_dir,
        "mclip": mclip_dir,
        "mclip_tower": tower,
    }


@pytest.fixture(scope="session")
def store(hub: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All three installed through `models import clip DIR`'s code."""
    from photovault.models.hub import import_hub_dir

    store = tmp_path_factory.mktemp("store")
    for key in ("clip", "siglip", "mclip"):
        import_hub_dir(store, hub[key])
    return store


def runtime(store: Path, name: str) -> ClipModel:
    model = ModelStore(store).get(name, kind="clip")
    return ClipModel(model, "fp32", SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))


def photos() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    shapes = [(48, 64), (64, 48), (40, 40), (90, 33)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


def test_a_hub_folder_imports_with_a_manifest_of_family_tokenizer_and_checksums(
    store: Path, hub: dict[str, Any]
) -> None:
    from photovault.models.store import sha256_file

    manifest = ModelStore(store).verify("pv-hub-tiny__random")
    extra = manifest.extra
    assert manifest.architecture == "pv-hub-tiny"
    assert (manifest.embedding_dim, manifest.input_size, manifest.licence) == (16, 32, "mit")
    assert extra["family"] == "clip"
    assert extra["tokenizer"] == "hf" and extra["tokenizer_model"] == "BPE"
    assert (extra["pad_id"], extra["eos_id"], extra["context_length"]) == (0, 49407, 77)
    assert extra["text_input_dtype"] == "int32"
    assert extra["normalisation"] == "l2"
    assert extra["scoring"]["kind"] == "softmax"
    assert extra["hub_sha256"]["visual/model.onnx"] == sha256_file(
        hub["clip"] / "visual/model.onnx"
    )
    assert {f.path for f in manifest.files} == {"image.onnx", "text.onnx"}
    assert "tokenizer.json" in extra["data_files"]


def test_image_embeddings_equal_the_torch_models(store: Path, hub: dict[str, Any]) -> None:
    import torch

    from photovault.models.preprocess import preprocess

    clip = runtime(store, "pv-hub-tiny__random")
    pixels = photos()
    ours = clip.embed_pixels(pixels)
    batch = np.stack([preprocess(p, 32, clip.mean, clip.std, 1.0) for p in pixels])
    with torch.no_grad():
        theirs = hub["model"].encode_image(torch.from_numpy(batch)).numpy()
    clip.close()
    assert cosines(ours, theirs).min() >= 0.9999


def test_text_embeddings_equal_the_torch_models_with_open_clips_own_tokens(
    store: Path, hub: dict[str, Any]
) -> None:
    import open_clip
    import torch

    clip = runtime(store, "pv-hub-tiny__random")
    ours = clip.encode_text(TEXTS)
    ids, _ = clip.tokenize(TEXTS)
    clip.close()
    reference = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    np.testing.assert_array_equal(ids, reference.numpy())
    with torch.no_grad():
        theirs = hub["model"].encode_text(reference).numpy()
    assert cosines(ours, theirs).min() >= 0.9999


def test_a_siglip_model_records_sigmoid_scoring_squash_and_its_pad_token(
    store: Path, hub: dict[str, Any]
) -> None:
    import torch

    from photovault.models.preprocess import preprocess

    clip = runtime(store, "pv-tiny-siglip__random")
    extra = ModelStore(store).get("pv-tiny-siglip__random").manifest.extra
    assert extra["family"] == "siglip"
    assert extra["scoring"]["kind"] == "sigmoid" and clip.scoring.kind == "sigmoid"
    assert (extra["resize_mode"], extra["interpolation"]) == ("squash", "bilinear")
    assert extra["clean"] == "canonicalize"
    assert extra["pad_id"] == 49407  # the tokenizer's pad token, not CLIP's 0
    ids, _ = clip.tokenize(["Hello, World!", "hello world"])
    np.testing.assert_array_equal(ids[0], ids[1])  # punctuation and case removed
    pixels = photos()
    batch = np.stack(
        [preprocess(p, 32, (0.5,) * 3, (0.5,) * 3, 1.0, "squash", "bilinear") for p in pixels]
    )
    with torch.no_grad():
        theirs = hub["model"].encode_image(torch.from_numpy(batch)).numpy()
    assert cosines(clip.embed_pixels(pixels), theirs).min() >= 0.9999
    clip.close()


def test_a_multilingual_unigram_tokenizer_feeds_its_own_ids_and_mask(
    store: Path, hub: dict[str, Any]
) -> None:
    import torch
    from tokenizers import Tokenizer

    name = "xlm-tiny-vit-b-32"
    assert ModelStore(store).get(name).manifest.extra["family"] == "xlm-roberta"
    clip = runtime(store, name)
    ids, mask = clip.tokenize(MULTILINGUAL)
    assert mask is not None
    reference = Tokenizer.from_file(str(hub["mclip"] / "textual/tokenizer.json"))
    for row, text in enumerate(MULTILINGUAL):
        want = reference.encode(" ".join(text.split())).ids
        if len(want) > 77:
            want = [*want[:76], 2]  # truncated, still ends with </s>
        expected = want + [1] * (77 - len(want))  # <pad> is 1 in XLM-R
        assert ids[row].tolist() == expected
        assert mask[row].tolist() == [1] * len(want) + [0] * (77 - len(want))
    assert ids[0, 0] == 0  # <s>
    ours = clip.encode_text(MULTILINGUAL)
    clip.close()
    with torch.no_grad():
        theirs = hub["mclip_tower"](torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert cosines(ours, theirs).min() >= 0.9999


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO / "daemon"), **env},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_importing_a_hub_folder_does_not_import_torch(hub: dict[str, Any], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from photovault.models import hub\n"
        f"m = hub.import_hub_dir({str(tmp_path / 'models')!r}, {str(hub['clip'])!r})\n"
        "heavy = sorted(k for k in sys.modules if k.split('.')[0] in "
        "('torch', 'open_clip', 'torchvision'))\n"
        "print(m.name, heavy)\n"
    )
    done = _run(code, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pv-hub-tiny__random", "[]"]


def write_config(base: Path) -> Path:
    (base / "photos").mkdir(parents=True, exist_ok=True)
    config = base / "vaultd.toml"
    config.write_text(
        f'state_dir = "{base / "state"}"\n[[shares]]\nname = "p"\npath = "{base / "photos"}"\n',
        encoding="utf-8",
    )
    return config


def test_from_hub_offline_installs_from_the_hf_cache_without_torch(
    hub: dict[str, Any], store: Path, tmp_path: Path
) -> None:
    from helpers.hub_models import hf_cache

    hf_home = tmp_path / "hf"
    hf_cache(hf_home, "immich-app/PV-Hub-Tiny__random", hub["clip"])
    config = write_config(tmp_path)
    code = (
        "import sys\n"
        "from photovault.cli.vaultctl import main\n"
        f"rc = main(['--config', {str(config)!r}, 'models', 'install', 'clip', "
        "'PV-Hub-Tiny__random', '--from-hub'])\n"
        "heavy = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'open_clip'))\n"
        "print('RESULT', rc, heavy)\n"
    )
    done = _run(code, {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert "RESULT 0 []" in done.stdout, done.stdout + done.stderr
    assert "using the local cache only" in done.stdout
    installed = ModelStore(tmp_path / "state" / "models").verify("pv-hub-tiny__random")
    imported = ModelStore(store).get("pv-hub-tiny__random").manifest
    assert [f.sha256 for f in installed.files] == [f.sha256 for f in imported.files]
    assert installed.source.startswith("https://huggingface.co/immich-app/PV-Hub-Tiny__random")
    clip = runtime(tmp_path / "state" / "models", "pv-hub-tiny__random")
    reference = runtime(store, "pv-hub-tiny__random")
    assert cosines(clip.encode_text(TEXTS), reference.encode_text(TEXTS)).min() >= 0.9999
    clip.close()
    reference.close()


def test_from_hub_offline_without_the_model_in_the_cache_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models.hub import install_from_hub

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"not in the local hub cache.*models import clip DIR"):
        install_from_hub(tmp_path / "models", "ViT-B-32__openai", say=lambda _: None)
    assert not (tmp_path / "models" / "vit-b-32__openai").exists()


def test_a_tampered_tower_is_refused_against_the_hubs_checksum(
    hub: dict[str, Any], tmp_path: Path
) -> None:
    from photovault.models.hub import prepare_dir

    with pytest.raises(ModelError, match="sha256 differs from the hub's"):
        prepare_dir(hub["clip"], tmp_path / "out", pins={"visual/model.onnx": "0" * 64})


def test_a_folder_without_tokenizer_json_is_refused(hub: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    from photovault.models.hub import import_hub_dir

    src = tmp_path / "src"
    shutil.copytree(hub["clip"], src)
    (src / "textual/tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"no textual/tokenizer\.json"):
        import_hub_dir(tmp_path / "models", src)
    assert ModelStore(tmp_path / "models").list() == []


def test_models_list_available_shows_the_catalogue_and_where_figures_come_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from photovault.cli.vaultctl import main

    assert main(["models", "list", "--available", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"ViT-B-32__openai", "ViT-B-16-SigLIP2__webli", "XLM-Roberta-Large-Vit-B-32"} <= names
    assert all(r["repo"].startswith("immich-app/") for r in rows)
    assert "download_mb" in rows[0]["figures"]["estimated"]
    assert rows[0]["figures"]["measured"] == []


def test_an_installed_model_without_tokenizer_json_keeps_the_builtin_tokenizer(
    tiny_models: Any, tmp_path: Path
) -> None:
    from photovault.models.install import import_model
    from photovault.models.tokenizer import default_tokenizer

    src = tiny_models.build_clip_dir(tmp_path / "src")
    manifest = import_model(tmp_path / "models", "clip", src)
    model = InstalledModel(tmp_path / "models" / manifest.name, manifest)
    clip = ClipModel(model, "fp32", SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0))
    ids, mask = clip.tokenize(["a photo of a cat"])
    assert mask is None
    np.testing.assert_array_equal(ids, default_tokenizer()(["a photo of a cat"]))
    clip.close()


def test_vaultctl_models_import_takes_a_hub_folder_under_a_chosen_name(
    hub: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from photovault.cli.vaultctl import main

    config = write_config(tmp_path)
    argv = ["--config", str(config), "models", "import", "clip", str(hub["mclip"])]
    assert main([*argv, "--store-name", "my-mclip"]) == 0
    assert "imported my-mclip (clip)" in capsys.readouterr().out
    manifest = ModelStore(tmp_path / "state" / "models").verify("my-mclip")
    assert manifest.extra["family"] == "xlm-roberta"
    assert manifest.extra["tokenizer_model"] == "Unigram"


def test_a_siglip_model_without_published_figures_records_the_cosine_fallback(
    store: Path,
) -> None:
    scoring = ModelStore(store).get("pv-tiny-siglip__random").manifest.extra["scoring"]
    assert scoring["basis"] == "fallback"
    assert scoring["tag_min_similarity"] == pytest.approx(0.1)
    assert scoring["tag_min_confidence"] < 0.01  # the sigmoid at that cosine: reachable
    assert "fallback" in scoring["source"]


def test_a_siglip_model_scores_with_published_figures_where_the_catalogue_has_them(
    hub: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models import hub as hub_module

    repo = "immich-app/ViT-B-16-SigLIP__webli"
    # No trained figures are catalogued yet (none could be checked here): the fallback.
    fallback = hub_module.prepare_dir(hub["siglip"], tmp_path / "a", "mine", repo=repo)
    assert fallback.extra["scoring"]["basis"] == "fallback"
    entry = {"logit_scale": 117.33, "logit_bias": -12.93, "scoring_source": "a model card"}
    monkeypatch.setattr(hub_module, "catalogue_entry", lambda *names: entry)
    manifest = hub_module.prepare_dir(hub["siglip"], tmp_path / "b", "mine", repo=repo)
    scoring = manifest.extra["scoring"]
    assert (scoring["logit_scale"], scoring["logit_bias"]) == (117.33, -12.93)
    assert scoring["basis"] == "published" and scoring["source"] == "a model card"
    assert scoring["tag_min_confidence"] == 0.1


def _cached(hub: dict[str, Any], hf_home: Path, commit: str = "a" * 40) -> Path:
    from helpers.hub_models import hf_cache

    return hf_cache(hf_home, "immich-app/PV-Hub-Tiny__random", hub["clip"], commit)


def _offline(monkeypatch: pytest.MonkeyPatch, hf_home: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_from_hub_offline_verifies_every_file_against_its_cache_blob_and_says_so(
    hub: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models.hub import install_from_hub

    _cached(hub, tmp_path / "hf")
    _offline(monkeypatch, tmp_path / "hf")
    said: list[str] = []
    install_from_hub(tmp_path / "models", "PV-Hub-Tiny__random", say=said.append)
    verified = [line for line in said if "verified" in line]
    assert verified and "cache blob's sha256 name" in verified[0], said


def test_from_hub_offline_refuses_a_cached_file_that_differs_from_its_blob_name(
    hub: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models.hub import install_from_hub

    snapshot = _cached(hub, tmp_path / "hf")
    blob = (snapshot / "textual/tokenizer_config.json").resolve()
    blob.write_text(blob.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # still JSON
    _offline(monkeypatch, tmp_path / "hf")
    with pytest.raises(ModelError, match=r"tokenizer_config\.json: content differs"):
        install_from_hub(tmp_path / "models", "PV-Hub-Tiny__random", say=lambda _: None)
    assert ModelStore(tmp_path / "models").list() == []


def test_small_files_are_verified_against_their_git_blob_sha1(tmp_path: Path) -> None:
    import hashlib

    from photovault.models.hub import verify_snapshot

    data = b'{"pad_token": "<pad>"}\n'
    sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / sha1).write_bytes(data)
    snapshot = tmp_path / "snap"
    (snapshot / "textual").mkdir(parents=True)
    (snapshot / "textual/tokenizer_config.json").symlink_to(tmp_path / "blobs" / sha1)
    assert "1 against their cache blob's git sha1 name" in verify_snapshot(snapshot, {})
    (tmp_path / "blobs" / sha1).write_bytes(data + b" ")
    with pytest.raises(ModelError, match="differs from the hub's git sha1"):
        verify_snapshot(snapshot, {})
    (snapshot / "textual/tokenizer_config.json").unlink()
    (snapshot / "textual/tokenizer_config.json").write_bytes(data)  # a plain copy: no address
    with pytest.raises(ModelError, match=r"cannot verify textual/tokenizer_config\.json"):
        verify_snapshot(snapshot, {})


def test_from_hub_downloads_the_commit_the_pins_were_read_from(
    hub: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    from photovault.models import hub as hub_module
    from photovault.models.store import sha256_file

    commit = "b" * 40
    snapshot = _cached(hub, tmp_path / "hf", commit)
    pins = {"visual/model.onnx": sha256_file(hub["clip"] / "visual/model.onnx")}
    facts = {"bytes": 1, "licence": "mit", "pins": pins, "revision": commit}
    asked: list[Any] = []

    def fake_download(repo: str, **kwargs: Any) -> str:
        asked.append(kwargs.get("revision"))
        return str(snapshot)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_module, "remote_facts", lambda repo, revision=None: facts)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    said: list[str] = []
    hub_module.install_from_hub(tmp_path / "models", "PV-Hub-Tiny__random", say=said.append)
    assert asked == [commit]
    assert any("1 against the sha256 the hub lists" in line for line in said), said
    facts["pins"] = {"visual/model.onnx": "0" * 64}
    with pytest.raises(ModelError, match=r"visual/model\.onnx: content differs"):
        hub_module.install_from_hub(tmp_path / "models2", "PV-Hub-Tiny__random", say=lambda _: None)


def test_pyproject_requires_a_huggingface_hub_with_the_errors_module_hub_imports() -> None:
    # HfHubHTTPError and LocalEntryNotFoundError live in huggingface_hub.errors since 0.25.
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (floor,) = [
        m.group(1)
        for r in project["dependencies"]
        if (m := re.fullmatch(r"huggingface[-_]hub>=([0-9.]+)", r.replace(" ", "")))
    ]
    assert tuple(int(x) for x in floor.split(".")[:2]) >= (0, 25)
    source = (REPO / "daemon/photovault/models/hub.py").read_text(encoding="utf-8")
    assert "from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError" in source


def test_from_hub_refuses_an_installed_model_before_downloading_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photovault.models.hub import install_from_hub

    (tmp_path / "models" / "vit-b-32__openai").mkdir(parents=True)
    (tmp_path / "models" / "vit-b-32__openai" / "manifest.json").write_text("{}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"already installed .*\(use --replace"):
        install_from_hub(tmp_path / "models", "ViT-B-32__openai", say=lambda _: None)
