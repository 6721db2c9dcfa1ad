"""The analyzer interface: what every analyzer (metadata, clip, tags, faces, text) implements.

An analyzer receives a batch of decoded photos with their metadata and returns
one JSON-serialisable result per photo. The pipeline stores the results in the
catalog keyed by content hash (so copies and moves reuse them) and hands them
to the sidecar and index stages, which read them through the typed views of
`photovault.results`. Adding an analyzer is one module in `photovault.analyze`
with a `create(settings, context)` factory, its result type in `results.py`
and one line in `registry.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photovault.media.types import DecodedImage, PhotoMetadata


@dataclass
class AnalysisItem:
    """One photo handed to the analyzers."""

    file_id: int
    path: Path
    sha256: str
    image: DecodedImage
    metadata: PhotoMetadata
    # Results of analyzers that ran earlier in the same batch, by analyzer name
    # (the `tags` analyzer reads the `clip` embedding from here).
    results: dict[str, Any] = field(default_factory=dict)


class AnalyzerError(Exception):
    """An analyzer failed on one photo; only that photo's step is failed."""


class Analyzer(ABC):
    """Base class. Subclasses set `name`, `version` and `image_side`."""

    #: Key under which results are stored; also the name used in `[analyzers] enabled`.
    name: str = ""
    #: Bump when results change meaning, so stored results are recomputed.
    version: str = "1"
    #: Long side in pixels the analyzer wants; the decoder decodes to the largest
    #: side any enabled analyzer asks for (and no more).
    image_side: int = 224
    #: Names of analyzers whose results this one reads from `item.results`.
    requires: tuple[str, ...] = ()

    @abstractmethod
    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        """Return one result (or an AnalyzerError) per item, in order."""

    def status(self) -> dict[str, Any]:
        """Extra facts for `vaultctl status` (model, provider in use ...)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most analyzers hold nothing
        """Release models and sessions; called on shutdown and reload."""
