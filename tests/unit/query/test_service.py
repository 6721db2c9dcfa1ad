"""The handlers need only the narrow service of query/service.py, not the daemon: a
small fake of it answers status, controls, rescans and errors as the daemon does."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from photovault.config import Settings
from photovault.query.handlers import Handlers
from photovault.query.protocol import ProtocolError, Request
from photovault.query.server import Caller

ROOT = Caller(os.getpid(), 0, 0)


class FakeVault:
    """Only what `VaultService` names; every call is recorded."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.settings = Settings.model_validate(
            {"state_dir": str(root / "state"), "shares": [{"name": "p", "path": str(root)}]}
        )
        self.calls: list[str] = []
        self.throttle = SimpleNamespace(
            pause=lambda: self.calls.append("pause"), resume=lambda: self.calls.append("resume")
        )
        self.catalog = SimpleNamespace(get=lambda share, rel: None)
        self.index = self.people = self.sidecars = SimpleNamespace()

    def resolve(self, share: str, relpath: str) -> Path | None:
        return self.settings.shares[0].path / relpath if share == "p" else None

    def status(self) -> dict[str, Any]:
        return {"fake": True}

    def check(self) -> dict[str, Any]:
        return {"ok": True}

    def scan_async(self, share: str | None, **kw: Any) -> Any:
        self.calls.append(f"scan {share} {sorted(kw.items())}")
        done = SimpleNamespace(wait=lambda timeout=None: True, is_set=lambda: True)
        return SimpleNamespace(names=[share], done=done, errors={})

    def clip(self) -> Any:
        return None

    def search_latency(self, seconds: float) -> None:
        self.calls.append("latency")


def test_the_handlers_run_on_the_narrow_service_alone(tmp_path: Path) -> None:
    vault = FakeVault(tmp_path / "photos")
    handlers = Handlers(vault)  # type: ignore[arg-type]  # a duck-typed fake of VaultService

    def call(op: str, **args: Any) -> Any:
        return handlers.handle(Request(op, args), ROOT)

    assert call("status") == {"fake": True}
    assert call("pause") == {"paused": True} and call("resume") == {"paused": False}
    assert vault.calls[:2] == ["pause", "resume"]
    assert call("check") == {"ok": True}
    call("rescan", share="p")
    assert vault.calls[-1].startswith("scan p")
    with pytest.raises(ProtocolError, match="is not in the catalog"):
        call("show", path=str(tmp_path / "photos" / "missing.jpg"))


def test_embed_image_of_a_photo_not_embedded_yet_asks_the_daemon_and_maps_its_errors(
    tmp_path: Path,
) -> None:
    vault = FakeVault(tmp_path / "photos")
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    row = SimpleNamespace(id=1, share="p", relpath="a.jpg", sha256="s" * 64, state="done")
    vault.catalog = SimpleNamespace(
        get=lambda share, rel: row, content=lambda sha: SimpleNamespace(results={})
    )
    vault.clip = lambda: SimpleNamespace(model_name="tiny")  # type: ignore[method-assign]
    made: list[Any] = []

    def embed_image(r: Any) -> list[float]:
        made.append(r)
        if len(made) > 1:
            raise ValueError("a.jpg: cannot identify image file")
        return [0.6, 0.8]

    vault.embed_image = embed_image  # type: ignore[attr-defined]
    handlers = Handlers(vault)  # type: ignore[arg-type]
    path = str(tmp_path / "photos" / "a.jpg")
    got = handlers.handle(Request("embed", {"kind": "image", "path": path}), ROOT)
    assert got == {"model": "tiny", "vector": [0.6, 0.8]} and made == [row]
    with pytest.raises(ProtocolError, match="cannot identify"):
        handlers.handle(Request("embed", {"kind": "image", "path": path}), ROOT)
