"""Where a CLIP export's weights come from (models/export/clip.py): open_clip
and torch imported on demand, a pretrained tag checked against the hub
(fast failure without network) or a checkpoint file, and the name and
licence note the store records.

Why apart: finding and loading the weights is the part that touches the
network and the file system; the towers (cliparch.py) and the checks
(clipchecks.py) only see the loaded model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from photovault.models.store import ModelError

log = logging.getLogger(__name__)

HUB_TIMEOUT_S = 5.0


def torch_module() -> Any:
    """torch, or a ModelError saying how to get it."""
    try:
        import torch
    except ImportError as exc:
        raise ModelError(NEEDS_EXPORT) from exc
    return torch


def open_clip_module() -> Any:
    """open_clip, or a ModelError saying how to get it."""
    try:
        import open_clip
    except ImportError as exc:
        raise ModelError(NEEDS_EXPORT) from exc
    return open_clip


NEEDS_EXPORT = (
    "exporting CLIP needs torch, torchvision and open_clip_torch: "
    "pip install 'photovault[export]' (or import an exported folder with "
    "`vaultctl models import clip DIR`)"
)


def store_name(architecture: str, pretrained: str) -> str:
    """The model's name in the store, e.g. ``vit-b-32-laion2b_s34b_b79k``.

    A checkpoint file contributes its stem, so two files for one architecture
    install side by side.
    """
    tag = Path(pretrained).stem if is_path(pretrained) else pretrained
    name = re.sub(r"[^a-z0-9._-]+", "-", f"{architecture}-{tag}".lower()).strip("-._")
    return name[:64] or "clip"


def is_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.startswith(".") or Path(pretrained).is_file()


def _probe(host: str, port: int, timeout: float) -> str | None:
    """None if host:port accepts a TCP connection within `timeout`, else the reason.

    Runs in a daemon thread joined with a timeout: getaddrinfo has no timeout
    of its own and can block for tens of seconds on a box without DNS.
    """
    result: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=attempt, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return result[0] if result else f"no answer within {timeout:.0f} s"


def _offline_help(architecture: str, tag: str, where: str, reason: str) -> str:
    return (
        f"cannot download {architecture} weights {tag!r} from {where}: {reason}. "
        "Without network, either (1) copy the checkpoint file (open_clip_pytorch_model.bin "
        f"or open_clip_model.safetensors from https://huggingface.co/{where.split('/', 1)[-1]}) "
        f"here and run `vaultctl models install clip {architecture} --pretrained /path/to/file`, "
        f"or (2) run `vaultctl models install clip {architecture} --pretrained {tag}` on a "
        "machine with network and copy the installed folder here with "
        "`vaultctl models import clip DIR`"
    )


def check_hub(architecture: str, tag: str, timeout: float = HUB_TIMEOUT_S) -> None:
    """Fail fast (ModelError) when a pretrained tag cannot be downloaded from here."""
    open_clip = open_clip_module()
    cfg = open_clip.get_pretrained_cfg(architecture, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        raise ModelError(
            f"{tag!r} is neither a file nor a pretrained tag of {architecture} "
            f"(tags: {', '.join(tags) or 'none'})"
        )
    if cfg.get("hf_hub"):
        endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        where = f"{endpoint.hostname}/{cfg['hf_hub'].rstrip('/')}"
    else:
        endpoint = urlparse(cfg.get("url") or "")
        where = cfg.get("url") or "?"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline and cfg.get("hf_hub"):
        raise ModelError(_offline_help(architecture, tag, where, "HF_HUB_OFFLINE is set"))
    if not endpoint.hostname:
        raise ModelError(f"{architecture} {tag}: open_clip knows no download location")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    reason = _probe(endpoint.hostname, port, timeout)
    if reason is not None:
        raise ModelError(_offline_help(architecture, tag, where, reason))


def load_model(architecture: str, pretrained: str) -> tuple[Any, str]:
    """The open_clip model in eval mode and a one-line description of its weights."""
    open_clip = open_clip_module()
    if architecture not in open_clip.list_models():
        raise ModelError(
            f"unknown open_clip architecture {architecture!r} "
            "(see open_clip.list_models(), e.g. ViT-B-32, ViT-L-14, RN50)"
        )
    if is_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelError(f"{path}: checkpoint file not found")
        source = f"open_clip {open_clip.__version__}: {architecture} from file {path.name} "
        source += f"(sha256 {_sha256(path)})"
        pretrained = str(path)
    else:
        check_hub(architecture, pretrained)
        cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
        source = f"open_clip {open_clip.__version__}: {architecture} pretrained={pretrained}"
        if cfg.get("hf_hub"):
            source += f" (hf-hub {cfg['hf_hub'].rstrip('/')})"
    log.info("loading %s weights %s", architecture, pretrained)
    try:
        model = open_clip.create_model(architecture, pretrained=pretrained, weights_only=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load {architecture} weights {pretrained}: {exc}") from exc
    return model.eval(), source


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def licence(open_clip: Any, architecture: str, pretrained: str) -> str:
    """open_clip does not record licences; point at the model card instead of guessing."""
    if is_path(pretrained):
        return "see the checkpoint's model card"
    cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
    hub = (cfg.get("hf_hub") or "").rstrip("/")
    return f"see https://huggingface.co/{hub}" if hub else "see the open_clip model card"
