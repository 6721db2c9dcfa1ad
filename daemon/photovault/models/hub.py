"""Ready-made ONNX CLIP models in Immich's hub layout, installed without torch.

Immich publishes its CLIP, SigLIP(2) and multilingual models on the Hugging
Face hub as ``immich-app/<ARCH>__<WEIGHTS>`` with this layout (its
``machine-learning/`` exporter writes it, its server reads it)::

    config.json                      open_clip model config: embed_dim,
                                     vision_cfg.image_size, text_cfg.context_length,
                                     text_cfg.tokenizer_kwargs.clean ...
    visual/model.onnx                input "image" float[1,3,S,S] -> "embedding"
    visual/preprocess_cfg.json       size, mean, std, interpolation, resize_mode
    textual/model.onnx               input "text" int32[1,L] (Multilingual-CLIP:
                                     "input_ids" + "attention_mask") -> "embedding"
    textual/tokenizer.json           the Hugging Face tokenizer
    textual/tokenizer_config.json    pad_token, eos_token, model_max_length
    textual/special_tokens_map.json
    README.md                        model card (licence in its front matter)

``prepare_dir`` turns such a folder into ours (``image.onnx``, ``text.onnx``,
the tokenizer files as data files, ``manifest.json`` with family, tokenizer,
embedding size, normalisation, scoring and the sha256 of every file), and
``import_hub_dir`` installs it through the same checks as any import
(``models/install.py``: hashes, shapes, both towers run once). Other files in
the repos (``fp16/``, ``rknpu/``, ``armnn`` builds) are not downloaded.

``install_from_hub`` downloads the files through ``huggingface_hub``
(resumable, cached in ``$HF_HOME``, progress bars) and imports them; with
``HF_HUB_OFFLINE=1`` it uses the cache only. Every file is verified before the
import: against the sha256 the hub lists for the commit it downloads, or, where
that listing is not available (offline, hub unreachable), against the content
address the cache stores it under (an LFS file's blob is named by its sha256, a
small file's by its git blob sha1). Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from photovault.models import hf_tokenizer
from photovault.models.families import CLEAN, FAMILIES, default_scoring, sigmoid_scoring
from photovault.models.store import (
    TEXT_MASK_INPUT,
    Manifest,
    ModelError,
    describe_file,
    sha256_file,
    write_manifest,
)

log = logging.getLogger(__name__)

HUB_ORG = "immich-app"
CONFIG = "config.json"
VISUAL = "visual/model.onnx"
TEXTUAL = "textual/model.onnx"
PREPROCESS = "visual/preprocess_cfg.json"
TOKENIZER = "textual/tokenizer.json"
TOKENIZER_CONFIG = "textual/tokenizer_config.json"
SPECIAL_TOKENS = "textual/special_tokens_map.json"
CARD = "README.md"
ALLOW_PATTERNS = [CONFIG, CARD, VISUAL, PREPROCESS, TEXTUAL, "textual/*.json"]
# Names in our folder: the towers, then data files copied as they are.
IMAGE_FILE = "image.onnx"
TEXT_FILE = "text.onnx"
DATA_FILES = {
    TOKENIZER: "tokenizer.json",
    TOKENIZER_CONFIG: "tokenizer_config.json",
    SPECIAL_TOKENS: "special_tokens_map.json",
    CONFIG: "config.json",
    PREPROCESS: "preprocess_cfg.json",
}
# OpenAI CLIP's, which open_clip assumes when a preprocess config is missing.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DTYPES = {"tensor(int32)": "int32", "tensor(int64)": "int64"}


def is_hub_layout(src: Path) -> bool:
    """True for a folder with Immich's ``visual/`` and ``textual/`` towers."""
    return (Path(src) / VISUAL).is_file() and (Path(src) / TEXTUAL).is_file()


def store_name(name: str) -> str:
    """``immich-app/ViT-B-32__openai`` -> ``vit-b-32__openai`` (a valid store name)."""
    last = name.rstrip("/").split("/")[-1]
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", last.lower()).strip("-._")
    return cleaned[:64] or "clip"


def repo_id(name: str) -> str:
    return name if "/" in name else f"{HUB_ORG}/{name}"


def _json(path: Path) -> dict[str, Any]:
    try:
        return hf_tokenizer.read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable JSON: {exc}") from exc


def card_licence(src: Path) -> str:
    """The ``license:`` of a model card's YAML front matter ('' if none)."""
    card = src / CARD
    if not card.is_file():
        return ""
    text = card.read_text(encoding="utf-8", errors="replace")
    front = re.match(r"---\s*\n(.*?)\n---", text, re.DOTALL)
    found = re.search(r"^license:\s*(\S+)", front.group(1), re.MULTILINE) if front else None
    return found.group(1).strip("'\"") if found else ""


def detect_family(name: str, config: dict[str, Any], text_inputs: dict[str, Any]) -> str:
    """The model family from its name, config and text tower (see models/families.py)."""
    text_cfg = config.get("text_cfg") or {}
    hints = " ".join([name, str(text_cfg.get("hf_tokenizer_name", ""))]).lower()
    if TEXT_MASK_INPUT in text_inputs:
        return "xlm-roberta"  # Multilingual-CLIP: a distilled XLM-R/LaBSE text tower
    if "nllb" in hints:
        return "nllb"
    if "siglip2" in hints or "gemma" in hints:
        return "siglip2"
    if "siglip" in hints or "init_logit_bias" in config:
        return "siglip"
    return "clip"


def _size(preprocess_cfg: dict[str, Any], config: dict[str, Any], where: Path) -> int:
    size = preprocess_cfg.get("size", (config.get("vision_cfg") or {}).get("image_size"))
    if isinstance(size, list):
        if len(set(size)) != 1:
            raise ModelError(f"{where}: non-square input size {size} is not supported")
        size = size[0]
    if not isinstance(size, int) or size <= 0:
        raise ModelError(f"{where}: no image size in {PREPROCESS} or {CONFIG}")
    return size


def _place(src: Path, dst: Path) -> None:
    """Hard-link when on one file system (large towers), else copy."""
    try:
        os.link(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def scoring_record(family: str, *names: str | None) -> dict[str, Any]:
    """The manifest's scoring: the trained figures the catalogue gives for the first
    of `names` it lists (repo or store name), else the family's defaults."""
    entry = catalogue_entry(*names)
    if entry and "logit_scale" in entry and "logit_bias" in entry:
        source = str(entry.get("scoring_source") or "models/data/hub_models.toml")
        scoring = sigmoid_scoring(entry["logit_scale"], entry["logit_bias"], source, "published")
        if scoring.kind == default_scoring(family).kind:
            return scoring.to_dict()
    return default_scoring(family).to_dict()


def prepare_dir(
    src: Path,
    out: Path,
    name: str | None = None,
    *,
    family: str | None = None,
    source: str = "",
    licence: str = "",
    pins: dict[str, str] | None = None,
    repo: str | None = None,
) -> Manifest:
    """Write our layout of the hub-layout folder `src` into `out` (not validated
    beyond what the manifest needs; ``import_hub_dir`` validates and installs).
    `repo`, the hub repository it came from, finds its catalogue entry (scoring)."""
    src, out = Path(src), Path(out)
    if not is_hub_layout(src):
        raise ModelError(f"{src}: not a hub-layout folder (needs {VISUAL} and {TEXTUAL})")
    for tower in ("visual", "textual"):
        extra_data = [p.name for p in (src / tower).iterdir() if "data" in p.suffix]
        if extra_data:
            raise ModelError(
                f"{src / tower}: ONNX external data ({', '.join(sorted(extra_data))}) "
                "is not supported; models over 2 GB per tower cannot be imported yet"
            )
    if not (src / TOKENIZER).is_file():
        raise ModelError(f"{src}: no {TOKENIZER}; the text tower needs its tokenizer")
    config = _json(src / CONFIG)
    preprocess_cfg = _json(src / PREPROCESS)
    name = store_name(name or src.name)
    for pattern, expected in (pins or {}).items():
        if (src / pattern).is_file() and sha256_file(src / pattern) != expected:
            raise ModelError(f"{src / pattern}: sha256 differs from the hub's {expected}")

    out.mkdir(parents=True, exist_ok=True)
    _place(src / VISUAL, out / IMAGE_FILE)
    _place(src / TEXTUAL, out / TEXT_FILE)
    data_files = []
    for hub_path, ours in DATA_FILES.items():
        if (src / hub_path).is_file():
            shutil.copyfile(src / hub_path, out / ours)
            data_files.append(ours)
    image = describe_file(out / IMAGE_FILE, "image", "fp32")
    text = describe_file(out / TEXT_FILE, "text", "fp32")

    family = family or detect_family(name, config, text.inputs)
    if family not in FAMILIES:
        raise ModelError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    text_cfg = config.get("text_cfg") or {}
    ids_input = next(n for n in text.inputs if n != TEXT_MASK_INPUT)
    fixed_length = text.inputs[ids_input][1]
    context = fixed_length or int(text_cfg.get("context_length", 77))
    kwargs = text_cfg.get("tokenizer_kwargs") or {}
    clean_mode = "canonicalize" if kwargs.get("clean") == "canonicalize" else CLEAN[family]
    try:
        facts = hf_tokenizer.describe(
            out / "tokenizer.json",
            family,
            _json(src / TOKENIZER_CONFIG),
            _json(src / SPECIAL_TOKENS),
            clean_mode,
        )
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    from photovault.models.session import inspect_model

    dtype = next(s.dtype for s in inspect_model(out / TEXT_FILE).inputs if s.name == ids_input)
    if dtype not in _DTYPES:
        raise ModelError(f"{src / TEXTUAL}: text input {ids_input} is {dtype}, not int32/int64")
    out_dim = next(iter(image.outputs.values()))[-1]
    embedding_dim = config.get("embed_dim") or out_dim
    resize_mode = str(preprocess_cfg.get("resize_mode", "shortest"))
    architecture = name.split("__")[0] if "__" in name else str(config.get("model", name))
    manifest = Manifest(
        name=name,
        task="clip",
        architecture=architecture,
        input_size=_size(preprocess_cfg, config, src),
        mean=tuple(float(x) for x in preprocess_cfg.get("mean", CLIP_MEAN)),  # type: ignore[arg-type]
        std=tuple(float(x) for x in preprocess_cfg.get("std", CLIP_STD)),  # type: ignore[arg-type]
        files=(image, text),
        embedding_dim=int(embedding_dim) if embedding_dim else None,
        source=source or f"hub layout from {src}",
        licence=licence or card_licence(src),
        extra={
            "layout": "immich-hub",
            "family": family,
            "context_length": int(context),
            **facts,
            "tokenizer_file": "tokenizer.json",
            "data_files": data_files,
            "text_input_dtype": _DTYPES[dtype],
            "resize_mode": resize_mode,
            "interpolation": str(preprocess_cfg.get("interpolation", "bicubic")).lower(),
            "crop_fraction": 1.0,
            # Both towers' outputs are L2-normalised by vaultd (idempotent for
            # Immich's exports, which already normalise).
            "normalisation": "l2",
            "scoring": scoring_record(family, repo, name, src.name),
            "hub_sha256": {
                path: sha256_file(src / path) for path in (VISUAL, TEXTUAL) if (src / path).exists()
            },
        },
    )
    write_manifest(out, manifest)
    return manifest


def import_hub_dir(
    store_dir: Path,
    src: Path,
    name: str | None = None,
    replace: bool = False,
    **facts: Any,
) -> Manifest:
    """`vaultctl models import clip DIR` for a hub-layout folder: convert it in a
    hidden staging folder beside the store, then import it with every check."""
    from photovault.models.install import import_model

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".hub-", dir=store_dir))
    try:
        prepare_dir(Path(src), staging / "model", name, **facts)
        return import_model(store_dir, "clip", staging / "model", replace=replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- downloads ------------------------------------------------------------------


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but at call time."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _wanted(path: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(path, pattern) for pattern in ALLOW_PATTERNS)


def remote_facts(repo: str, revision: str | None = None) -> dict[str, Any]:
    """Size, licence and LFS sha256 of the files we would download (needs network)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True, timeout=20)
    size = 0
    pins: dict[str, str] = {}
    for sibling in info.siblings or []:
        if not _wanted(sibling.rfilename):
            continue
        size += sibling.size or 0
        lfs = sibling.lfs
        sha = getattr(lfs, "sha256", None) or (lfs.get("sha256") if isinstance(lfs, dict) else None)
        if sha:
            pins[sibling.rfilename] = str(sha)
    card = info.card_data
    licence = ""
    if card is not None:
        licence = str(getattr(card, "license", None) or "")
    if not licence:
        tags = [t.split(":", 1)[1] for t in info.tags or [] if t.startswith("license:")]
        licence = tags[0] if tags else ""
    return {"bytes": size, "licence": licence, "pins": pins, "revision": info.sha}


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_snapshot(snapshot: Path, pins: dict[str, str]) -> str:
    """Check every file we use in a hub snapshot; returns what was checked and how,
    raises ModelError naming a file that differs or that nothing could check.

    A file with a pin (the hub's LFS sha256 for the downloaded commit) is checked
    against it; any other against its cache blob's name, which huggingface_hub sets
    to the file's sha256 (LFS files) or git blob sha1 (small files)."""
    files = sorted(
        p
        for p in snapshot.rglob("*")
        if p.is_file() and _wanted(p.relative_to(snapshot).as_posix())
    )
    counts = {"pinned": 0, "sha256": 0, "sha1": 0}
    unchecked: list[str] = []
    for path in files:
        rel = path.relative_to(snapshot).as_posix()
        blob = path.resolve().name if path.is_symlink() else ""
        if rel in pins:
            how, expected, actual = "pinned", pins[rel], sha256_file(path)
        elif re.fullmatch(r"[0-9a-f]{64}", blob):
            how, expected, actual = "sha256", blob, sha256_file(path)
        elif re.fullmatch(r"[0-9a-f]{40}", blob):
            how, expected, actual = "sha1", blob, _git_blob_sha1(path)
        else:
            unchecked.append(rel)
            continue
        if actual != expected:
            raise ModelError(
                f"{path}: content differs from the hub's "
                f"{'sha256' if how != 'sha1' else 'git sha1'} {expected} (got {actual}); "
                "a damaged or altered download: remove it from the cache and install again"
            )
        counts[how] += 1
    if unchecked:
        raise ModelError(
            f"{snapshot}: cannot verify {', '.join(unchecked)} (no pinned sha256 and not "
            "stored under a content address); `vaultctl models import clip DIR` takes a "
            "folder you have checked yourself"
        )
    parts = []
    if counts["pinned"]:
        parts.append(f"{counts['pinned']} against the sha256 the hub lists for this commit")
    if counts["sha256"]:
        parts.append(f"{counts['sha256']} against their cache blob's sha256 name (LFS)")
    if counts["sha1"]:
        parts.append(f"{counts['sha1']} against their cache blob's git sha1 name")
    return f"verified {len(files)} files: " + "; ".join(parts)


def install_from_hub(
    store_dir: Path,
    name: str,
    replace: bool = False,
    revision: str | None = None,
    store_as: str | None = None,
    say: Callable[[str], None] = print,
) -> Manifest:
    """`vaultctl models install clip NAME --from-hub`."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from photovault.models.install import refuse_installed

    repo = repo_id(name)
    refuse_installed(Path(store_dir), store_as or store_name(repo), replace)  # before a download
    pins: dict[str, str] = {}
    licence = ""
    resolved = revision
    is_offline = offline()
    if is_offline:
        say(f"{repo}: HF_HUB_OFFLINE is set, using the local cache only")
    else:
        try:
            facts = remote_facts(repo, revision)
        except Exception as exc:  # network, 404, hub down: snapshot_download says more
            log.info("no file metadata for %s: %s", repo, exc)
            say(
                f"{repo}: no file listing from the hub ({type(exc).__name__}); checksums "
                "come from the cache's content addresses"
            )
        else:
            pins, licence = facts["pins"], facts["licence"]
            # Download the very commit the pins describe, not whatever `main` is by then.
            resolved = facts.get("revision") or revision
            say(
                f"{repo}: {facts['bytes'] / 1e6:.0f} MB to download (or from the cache), "
                f"licence {licence or 'not stated'}"
            )
    try:
        path = snapshot_download(
            repo,
            revision=resolved,
            allow_patterns=ALLOW_PATTERNS,
            cache_dir=_cache_dir(),
            local_files_only=is_offline,
        )
    except LocalEntryNotFoundError as exc:
        raise ModelError(
            f"{repo} is not in the local hub cache and cannot be downloaded from here "
            f"({'HF_HUB_OFFLINE is set' if is_offline else 'no connection'}). Download it "
            f"elsewhere (`hf download {repo}`) and copy the folder here, then "
            "`vaultctl models import clip DIR`"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelError(f"cannot download {repo}: {type(exc).__name__}: {exc}") from exc
    snapshot = Path(str(path))
    commit = snapshot.name
    if pins and resolved and commit != resolved:
        raise ModelError(f"{repo}: asked for commit {resolved}, the cache gave {commit}")
    say(f"{repo} (revision {commit}): {verify_snapshot(snapshot, pins)}")
    return import_hub_dir(
        store_dir,
        snapshot,
        store_as or store_name(repo),
        replace,
        source=f"https://huggingface.co/{repo} (revision {commit})",
        licence=licence,
        repo=repo,
    )


# --- the catalogue --------------------------------------------------------------


def catalogue_entry(*names: str | None) -> dict[str, Any] | None:
    """The catalogue's entry for the first of `names` (a repo, a store name) it lists."""
    for wanted in names:
        if not wanted:
            continue
        for entry in available():
            if store_name(str(entry["name"])) == store_name(wanted):
                return entry
    return None


def available() -> list[dict[str, Any]]:
    """Known hub models (models/data/hub_models.toml), for `models list --available`."""
    text = resources.files("photovault.models").joinpath("data/hub_models.toml").read_text("utf-8")
    data = tomllib.loads(text)
    notes = data.get("figures", {})
    rows = []
    for entry in data.get("model", []):
        rows.append({**entry, "repo": repo_id(str(entry["name"])), "figures": notes})
    return rows
