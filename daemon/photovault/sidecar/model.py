"""What the analyzers tell the sidecar stage, as plain frozen values.

The sidecar stage never sees model objects or pixels: the pipeline turns analyzer
results into a `SidecarContent` and the writer turns that into XMP. Boxes come in
the frame the detector saw (the *oriented*, upright image) because that is what
every analyzer works in; only the writer knows about MWG's stored frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from photovault.results import Place


@dataclass(frozen=True)
class Keyword:
    """One tag, e.g. ``Keyword(("Animals", "Dog"), 0.91, "tags")``.

    `path` is hierarchical from the root; its last item is the flat keyword written
    to dc:subject. `confidence` and `source` (the analyzer name) are provenance: they
    go to our own namespace, never into the keyword text.
    """

    path: tuple[str, ...]
    confidence: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.path or any(not part.strip() for part in self.path):
            raise ValueError(f"keyword path must have non-empty parts: {self.path!r}")

    @property
    def leaf(self) -> str:
        return self.path[-1]


@dataclass(frozen=True)
class FaceRegion:
    """One detected face.

    `box` is (x, y, w, h), normalized to [0, 1], top-left based, in the ORIENTED
    image (after the EXIF orientation is applied), as the detector saw it.
    `name` is None for a face nobody has named yet: it is still written, as a
    region without a name. `face_id` is our stable id for the face; it is stored in
    the region so a name given in another program can be matched back to it.
    """

    box: tuple[float, float, float, float]
    name: str | None = None
    face_id: str | None = None
    confidence: float | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        _x, _y, w, h = self.box
        if w <= 0 or h <= 0:
            raise ValueError(f"empty face box: {self.box!r}")


@dataclass(frozen=True)
class SidecarContent:
    """Everything Photo Vault wants in one photo's sidecar.

    The writer replaces exactly what an earlier write of ours put there with this,
    so the pipeline always passes the complete current state, not a delta.
    `analyzed_at` is an ISO 8601 time; `model_versions` maps analyzer name to the
    model/version string used (provenance for the user). `place` is where the
    photo was taken by name (written to photoshop:City/State/Country and
    Iptc4xmpCore:CountryCode only where the sidecar has no value of its own);
    `text` the recognized text, one line per line (our photovault:Text).

    `kind` is the file's kind ("photo", "video", "motion_photo"): a video's faces
    are never written as regions (MWG and MP regions have no time, and a box is
    meaningless without its frame), only as ``People|name`` keywords.
    `live_photo_of` is set for the video half of a live photo: it has no sidecar
    of its own, its still's sidecar describes both.
    """

    keywords: tuple[Keyword, ...] = ()
    faces: tuple[FaceRegion, ...] = ()
    analyzed_at: str = ""
    model_versions: dict[str, str] = field(default_factory=dict)
    place: Place | None = None
    text: str | None = None
    kind: str = "photo"
    live_photo_of: str | None = None

    @property
    def is_video(self) -> bool:
        return self.kind == "video"
