"""Fixtures for the index tests: a real LanceDB index in tmp_path and a row builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photovault.index import IndexSettings, PhotoIndex, PhotoRecord

DIM = 16


def unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def photo(i: int, **kw: Any) -> PhotoRecord:
    """A plain photo with id i under share "main"; keywords override fields."""
    path = kw.pop("path", f"misc/IMG_{i:04d}.jpg")
    fields: dict[str, Any] = {
        "id": i,
        "share": "main",
        "path": path,
        "abs_path": f"/srv/photos/{path}",
        "sha256": f"{i:064x}",
        "size": 1000 + i,
        "mtime_ns": 1_700_000_000_000_000_000 + i,
    }
    fields.update(kw)
    return PhotoRecord(**fields)


@pytest.fixture
def make_index(tmp_path: Path) -> Iterator[Callable[..., PhotoIndex]]:
    """Open indexes under tmp_path (small vectors unless told); closed at teardown."""
    opened: list[PhotoIndex] = []

    def make(**settings: Any) -> PhotoIndex:
        settings.setdefault("vector_dim", DIM)
        settings.setdefault("face_dim", 4)
        idx = PhotoIndex(tmp_path / "index", IndexSettings(**settings))
        opened.append(idx)
        return idx

    yield make
    for idx in opened:
        idx.close()
