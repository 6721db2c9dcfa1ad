"""The outcome of an export: what was copied, what failed and what was skipped, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ExportError(Exception):
    """The export cannot start (missing source, dest is a file, no exiftool)."""


@dataclass(frozen=True)
class ExportedFile:
    """One copy made. `dropped`: embedded images or videos (a motion photo's video)
    taken out of the copy because they carried a location ("File:EmbeddedVideo")."""

    source: Path
    copy: Path
    dropped: tuple[str, ...] = ()


@dataclass
class ExportReport:
    """What happened to every file the sources named.

    `failed` and `skipped` hold (path, reason); the path is the source file, so
    the user can find it. No copy exists in `dest` for a failed file.
    """

    dest: Path
    copied: list[ExportedFile] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "copied": [
                {"source": str(f.source), "copy": str(f.copy)}
                | ({"dropped": list(f.dropped)} if f.dropped else {})
                for f in self.copied
            ],
            "failed": [{"path": str(p), "reason": r} for p, r in self.failed],
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
        }
