"""Catalog rows as the rest of the package sees them, and how paths are stored.

Paths are stored relative to their share as bytes (`os.fsencode`) because file
names on a share need not be valid UTF-8.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

STATES = ("pending", "processing", "done", "failed", "quarantined")


def encode_rel(relpath: str) -> bytes:
    return os.fsencode(relpath)


def decode_rel(raw: bytes) -> str:
    return os.fsdecode(raw)


def display(relpath: str) -> str:
    """A printable form of a possibly non-UTF-8 path (undecodable bytes as \\xNN)."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class FileRow:
    id: int
    share: str
    relpath: str
    size: int
    mtime_ns: int
    state: str
    attempts: int
    last_error: str | None
    sha256: str | None


@dataclass(frozen=True)
class ContentRecord:
    sha256: str
    analyzers: str
    metadata: dict[str, Any]
    results: dict[str, Any]
    analysis_runs: int


def row_of(r: Any) -> FileRow:
    """A `files` row (sqlite3.Row) as a FileRow."""
    return FileRow(
        id=r["id"],
        share=r["share"],
        relpath=decode_rel(r["relpath"]),
        size=r["size"],
        mtime_ns=r["mtime_ns"],
        state=r["state"],
        attempts=r["attempts"],
        last_error=r["last_error"],
        sha256=r["sha256"],
    )
