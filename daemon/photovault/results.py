"""What each analyzer's stored result means: typed views for the stages that read them.

Analyzers store plain JSON dicts in the catalog (keyed by content hash, so copies
and moves reuse them). The sidecar, index, catalog and query stages read those
dicts through this leaf module, never through `photovault.analyze`: a change in
an analyzer's output is one change here, and a new analyzer is its module, its
result type here and one registry line. Every reader tolerates a missing result
and a failed one ({"error": ...}): those read as "nothing known".

This module imports nothing of ours and nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Analyzers whose results carry {"tags": [{"tag", "confidence", "source"}]}
#: (faces: the People keywords; text: the Documents keywords).
TAG_SOURCES = ("tagger", "tags", "faces", "text")


def ok(result: Any) -> dict[str, Any]:
    """An analyzer result, or {} when the analyzer is off or failed on this photo."""
    if isinstance(result, dict) and "error" not in result:
        return result
    return {}


def photo_tags(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every tag of a photo's stored results, from each tag-producing analyzer (a
    failed analyzer's {"error": ...} contributes none). Show, sidecars and the index
    all read tags through here, so a new tag source is added in one place."""
    return [
        tag
        for source in TAG_SOURCES
        for tag in ok(results.get(source)).get("tags", []) or []
        if isinstance(tag, dict) and tag.get("tag")
    ]


def _seconds(value: Any) -> float | None:
    """A stored time in seconds into a video, or None (photos have none)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_signature(signature: str) -> dict[str, str]:
    """ "metadata:1,clip:2" -> {"metadata": "1", "clip": "2"}."""
    out = {}
    for part in filter(None, signature.split(",")):
        name, _, version = part.partition(":")
        out[name] = version
    return out


# -- metadata: places and local time -------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a photo was taken, by name (reverse geocoded offline from its GPS).

    country_code is ISO 3166-1 alpha-2 ("PT"); region the first-level division
    ("Lisboa"); city the nearest populated place in that country (None far from
    any, e.g. at sea); within the larger town that city lies in when it is a
    district of one ("Berlin" for Kreuzberg): searched by, not shown."""

    country_code: str
    country: str
    region: str | None = None
    city: str | None = None
    within: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        out = {
            "country_code": self.country_code,
            "country": self.country,
            "region": self.region,
            "city": self.city,
        }
        if self.within:
            out["within"] = self.within
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> Place | None:
        if not isinstance(raw, dict) or not raw.get("country_code") or not raw.get("country"):
            return None
        return cls(
            str(raw["country_code"]),
            str(raw["country"]),
            str(raw["region"]) if raw.get("region") else None,
            str(raw["city"]) if raw.get("city") else None,
            str(raw["within"]) if raw.get("within") else None,
        )

    def label(self) -> str:
        """ "Lisbon, Portugal" (the city, else the region, and the country)."""
        first = self.city or self.region
        return f"{first}, {self.country}" if first else self.country

    def names(self) -> list[str]:
        """Every name a search may use for this place."""
        names = (self.city, self.within, self.region, self.country, self.country_code)
        return [n for n in names if n]


@dataclass(frozen=True)
class LocalTime:
    """The offset a capture time was read in, and where it came from.

    source: "exif" (the file said so: an offset tag or a time with its offset),
    "position" (the time zone at the GPS position, on that date) or None (no
    offset known: the wall clock is taken as it is)."""

    offset: str | None  # "+01:00"
    zone: str | None  # "Europe/Berlin" when source is "position"
    source: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"offset": self.offset, "zone": self.zone, "source": self.source}

    @classmethod
    def from_dict(cls, raw: Any) -> LocalTime | None:
        if not isinstance(raw, dict):
            return None
        return cls(raw.get("offset"), raw.get("zone"), raw.get("source"))


@dataclass(frozen=True)
class MetadataResult:
    """The `metadata` analyzer's result: capture facts, place and local time."""

    taken_at: str | None = None  # as the camera recorded it, offset optional
    taken_local: str | None = None  # wall-clock capture time at the place (ISO, no offset)
    lat: float | None = None
    lon: float | None = None
    camera: str | None = None
    lens: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    dhash: str | None = None
    place: Place | None = None
    local_time: LocalTime | None = None
    #: "photo", "video" or "motion_photo" (results stored before videos: "photo").
    kind: str = "photo"
    duration: float | None = None  # seconds, videos only
    #: For the video half of an Apple live photo: the still's file name (same folder).
    #: Such a video is part of its still and is not indexed on its own.
    live_photo_of: str | None = None
    #: For a still with a live-photo video beside it: that video's file name.
    live_video: str | None = None

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    @classmethod
    def from_stored(cls, raw: Any) -> MetadataResult:
        m = ok(raw)
        gps = m.get("gps") or {}
        return cls(
            taken_at=m.get("taken_at"),
            taken_local=m.get("taken_local"),
            lat=gps.get("lat"),
            lon=gps.get("lon"),
            camera=m.get("camera"),
            lens=m.get("lens"),
            width=m.get("width"),
            height=m.get("height"),
            orientation=m.get("orientation"),
            dhash=m.get("dhash"),
            place=Place.from_dict(m.get("place")),
            local_time=LocalTime.from_dict(m.get("local_time")),
            kind=str(m.get("kind") or "photo"),
            duration=float(m["duration"]) if isinstance(m.get("duration"), int | float) else None,
            live_photo_of=m.get("live_photo_of") or None,
            live_video=m.get("live_video") or None,
        )


# -- text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLine:
    """One recognized line. `box` is (x, y, w, h) as fractions of the stored frame
    (the image as stored in the file, before EXIF orientation), like face regions."""

    text: str
    box: tuple[float, float, float, float]
    score: float
    at: float | None = None  # seconds into a video where the line was read

    def to_dict(self) -> dict[str, Any]:
        out = {"text": self.text, "box": [round(v, 5) for v in self.box], "score": self.score}
        if self.at is not None:
            out["at"] = self.at
        return out


@dataclass(frozen=True)
class TextResult:
    """The `text` analyzer's result: lines in reading order, and what kind of
    document the photo is when it is mostly text ("receipt", "screenshot",
    "text"; None for a photo with a few words in it)."""

    lines: tuple[TextLine, ...] = ()
    document: str | None = None

    @property
    def text(self) -> str:
        """All lines, one per line, in reading order."""
        return "\n".join(line.text for line in self.lines)

    @classmethod
    def from_stored(cls, raw: Any) -> TextResult:
        t = ok(raw)
        lines = []
        for item in t.get("lines") or []:
            if not isinstance(item, dict) or not str(item.get("text") or "").strip():
                continue
            box = item.get("box") or (0.0, 0.0, 0.0, 0.0)
            lines.append(
                TextLine(
                    str(item["text"]),
                    (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    float(item.get("score", 0.0)),
                    _seconds(item.get("at")),
                )
            )
        return cls(tuple(lines), t.get("document"))


def metadata_of(results: Mapping[str, Any]) -> MetadataResult:
    return MetadataResult.from_stored(results.get("metadata"))


def text_of(results: Mapping[str, Any]) -> TextResult:
    return TextResult.from_stored(results.get("text"))


# -- tagger, clip, faces ----------------------------------------------------------------


@dataclass(frozen=True)
class TaggerResult:
    """The `tagger` analyzer's result: friendly tags (through `photo_tags`) and the raw
    classifier labels [{"synset", "label", "score"}]."""

    labels: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_stored(cls, raw: Any) -> TaggerResult:
        labels = ok(raw).get("labels") or []
        return cls(tuple(lab for lab in labels if isinstance(lab, dict)))


@dataclass(frozen=True)
class ClipFrame:
    """The embedding of one sampled frame of a video, at `at` seconds."""

    at: float
    embedding: tuple[float, ...]


@dataclass(frozen=True)
class ClipResult:
    """The `clip` analyzer's result: the L2-normalised image embedding, or None.

    For a video, `embedding` stands for the whole clip (the normalised mean of its
    frames) and `frames` holds each sampled frame's own embedding with its time, so
    a search can find the moment."""

    embedding: tuple[float, ...] | None = None
    frames: tuple[ClipFrame, ...] = ()

    @classmethod
    def from_stored(cls, raw: Any) -> ClipResult:
        c = ok(raw)
        vec = c.get("embedding", c.get("vector"))
        frames = []
        for item in c.get("frames") or []:
            emb = item.get("embedding") if isinstance(item, dict) else None
            at = _seconds(item.get("at")) if isinstance(item, dict) else None
            if at is not None and isinstance(emb, list | tuple) and emb:
                frames.append(ClipFrame(at, tuple(float(v) for v in emb)))
        if not isinstance(vec, list | tuple) or not vec:
            return cls(None, tuple(frames))
        return cls(tuple(float(v) for v in vec), tuple(frames))


@dataclass(frozen=True)
class FaceResult:
    """One face as the analyzer stored it: box (x, y, w, h) as fractions of the upright
    image, detector score, embedding; person and name are filled in by the people stage."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    embedding: tuple[float, ...] | None = None
    person_id: int | None = None
    person: str | None = None
    at: float | None = None  # seconds into a video (the frame the face was seen best in)


@dataclass(frozen=True)
class FacesResult:
    """The `faces` analyzer's result: its faces and the recognition model that made them."""

    faces: tuple[FaceResult, ...] = ()
    model: str | None = None
    analyzed: bool = False  # the analyzer ran (a photo without faces still has a result)

    @classmethod
    def from_stored(cls, raw: Any) -> FacesResult:
        f = ok(raw)
        out = []
        for item in f.get("faces") or []:
            if not isinstance(item, dict):
                continue
            box = item.get("box") or (0.0, 0.0, 0.0, 0.0)
            emb = item.get("embedding")
            pid = item.get("person_id")
            out.append(
                FaceResult(
                    (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    float(item.get("score", 1.0)),
                    tuple(float(v) for v in emb) if isinstance(emb, list | tuple) and emb else None,
                    int(pid) if isinstance(pid, int) else None,
                    item.get("person") or item.get("name"),
                    _seconds(item.get("at")),
                )
            )
        model = f.get("model") or next(
            (i.get("model") for i in f.get("faces") or [] if isinstance(i, dict)), None
        )
        return cls(tuple(out), model, isinstance(raw, dict) and "error" not in raw)


def tagger_of(results: Mapping[str, Any]) -> TaggerResult:
    return TaggerResult.from_stored(results.get("tagger"))


def clip_of(results: Mapping[str, Any]) -> ClipResult:
    return ClipResult.from_stored(results.get("clip"))


def faces_of(results: Mapping[str, Any]) -> FacesResult:
    return FacesResult.from_stored(results.get("faces"))
