"""The XMP vocabulary we read and write, and how to interpret a parsed packet.

Kept apart from the reader and writer so both agree on one definition of "ours":
our top-level properties in the `photovault` namespace list the keyword items we
added, and every face region we added carries our ``photovault:FaceID`` inside the
MWG ``Extensions`` struct. Anything else belongs to a person or another program.
"""

from __future__ import annotations

from dataclasses import dataclass

from photovault.sidecar.rdf import Arr, Lit, Struct, qname

PV = "http://ns.photovault.local/xmp/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
DIGIKAM = "http://www.digikam.org/ns/1.0/"
MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
ST_AREA = "http://ns.adobe.com/xmp/sType/Area#"
ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
MP = "http://ns.microsoft.com/photo/1.2/"
MPRI = "http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
MPREG = "http://ns.microsoft.com/photo/1.2/t/Region#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

#: The prefixes we use when we write (declared where not already in scope).
PREFIXES = {
    "rdf": RDF_NS,
    "dc": DC,
    "lr": LR,
    "digiKam": DIGIKAM,
    "mwg-rs": MWG_RS,
    "stArea": ST_AREA,
    "stDim": ST_DIM,
    "MP": MP,
    "MPRI": MPRI,
    "MPReg": MPREG,
    "photovault": PV,
}

#: Keyword arrays we merge into: (namespace, property, our ownership list, separator).
KEYWORD_ARRAYS = (
    (DC, "subject", "Subjects", None),
    (LR, "hierarchicalSubject", "HierarchicalSubjects", "|"),
    (DIGIKAM, "TagsList", "TagsList", "/"),
)

SCHEMA_VERSION = "1"


def k(ns: str, local: str) -> str:
    return qname(ns, local)


def text_of(value: object) -> str | None:
    """The text of a simple value, None for structs, arrays and absence."""
    return value.text if isinstance(value, Lit) else None


def items_of(value: object) -> list[object]:
    return list(value.items) if isinstance(value, Arr) else []


def texts(value: object) -> list[str]:
    """Text items of an array (non-text items are skipped)."""
    return [i.text for i in items_of(value) if isinstance(i, Lit)]


def number(value: object) -> float | None:
    text = text_of(value)
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def owned(props: dict[str, object], local: str) -> set[str]:
    """Items of one of our ownership bags (photovault:Subjects ...)."""
    return set(texts(props.get(k(PV, local))))


def _array_texts(props: dict[str, object], ns: str, local: str) -> set[str] | None:
    """Text items of a keyword array; empty when absent, None when not an array."""
    value = props.get(k(ns, local))
    if value is None:
        return set()
    return set(texts(value)) if isinstance(value, Arr) else None


def removed_keywords(props: dict[str, object]) -> list[tuple[str, ...]]:
    """Keyword paths a person removed: ours by our ownership lists, gone from the file.

    An item of photovault:HierarchicalSubjects missing from lr:hierarchicalSubject,
    or one of photovault:Subjects missing from dc:subject (an absent array counts
    as empty; one that is not an array tells nothing), was taken out by a person
    or another program after our write, since our own writes keep both in step.
    A removed leaf stands for every hierarchical keyword of ours ending in it.
    digiKam:TagsList alone is not consulted: programs that do not know it drop
    it whole.
    """
    hier = _array_texts(props, LR, "hierarchicalSubject")
    flat = _array_texts(props, DC, "subject")
    ours = {h: tuple(p for p in h.split("|") if p) for h in owned(props, "HierarchicalSubjects")}
    out: dict[tuple[str, ...], None] = {}
    for entry, path in sorted(ours.items()):
        if path and hier is not None and entry not in hier:
            out[path] = None
    gone_leaves = owned(props, "Subjects") - flat if flat is not None else set()
    for leaf in sorted(gone_leaves):
        paths = sorted(p for p in ours.values() if p and p[-1] == leaf)
        for path in paths or [(leaf,)]:
            out[path] = None
    return list(out)


@dataclass(frozen=True)
class RawRegion:
    """One MWG region as found in the packet, in the stored frame, centre-based.

    `area` is None when the region cannot be placed (missing or non-numeric
    fields, or pixel units without AppliedToDimensions); `problem` then says why.
    """

    type: str | None
    name: str | None
    area: tuple[float, float, float, float] | None
    unit: str | None
    face_id: str | None
    written_name: str | None
    confidence: float | None
    model: str | None
    problem: str | None

    @property
    def ours(self) -> bool:
        return self.face_id is not None


def _ext(region: Struct, local: str) -> object | None:
    ext = region.get(k(MWG_RS, "Extensions"))
    return ext.get(k(PV, local)) if isinstance(ext, Struct) else None


def applied_dims(props: dict[str, object]) -> tuple[float, float] | None:
    regions = props.get(k(MWG_RS, "Regions"))
    if not isinstance(regions, Struct):
        return None
    dims = regions.get(k(MWG_RS, "AppliedToDimensions"))
    if not isinstance(dims, Struct):
        return None
    w, h = number(dims.get(k(ST_DIM, "w"))), number(dims.get(k(ST_DIM, "h")))
    return (w, h) if w and h and w > 0 and h > 0 else None


def parse_region(value: object, dims: tuple[float, float] | None) -> RawRegion:
    """Interpret one RegionList item, tolerating what other programs write."""
    if not isinstance(value, Struct):
        return RawRegion(None, None, None, None, None, None, None, None, "region is not a struct")
    area = value.get(k(MWG_RS, "Area"))
    unit = None
    box = None
    problem = None
    if isinstance(area, Struct):
        unit = text_of(area.get(k(ST_AREA, "unit")))
        nums = [number(area.get(k(ST_AREA, f))) for f in ("x", "y", "w", "h")]
        if any(n is None for n in nums):
            problem = "stArea x/y/w/h missing or not a number"
        elif unit not in (None, "", "normalized"):
            if unit == "pixel" and dims:
                x, y, w, h = (float(v or 0.0) for v in nums)
                box = (x / dims[0], y / dims[1], w / dims[0], h / dims[1])
                problem = "area in pixel units (converted with AppliedToDimensions)"
            else:
                problem = f"area unit {unit!r} cannot be converted"
        else:
            box = tuple(nums)  # type: ignore[assignment]
    else:
        problem = "region has no Area"
    name = text_of(value.get(k(MWG_RS, "Name")))
    written = _ext(value, "WrittenName")
    return RawRegion(
        type=text_of(value.get(k(MWG_RS, "Type"))),
        name=name or None,
        area=box,  # type: ignore[arg-type]
        unit=unit,
        face_id=text_of(_ext(value, "FaceID")) or None,
        written_name=(text_of(written) or None) if written is not None else None,
        confidence=number(_ext(value, "Confidence")),
        model=text_of(_ext(value, "Model")),
        problem=problem,
    )


def mwg_regions(props: dict[str, object]) -> list[RawRegion]:
    regions = props.get(k(MWG_RS, "Regions"))
    if not isinstance(regions, Struct):
        return []
    dims = applied_dims(props)
    return [parse_region(v, dims) for v in items_of(regions.get(k(MWG_RS, "RegionList")))]


@dataclass(frozen=True)
class RawMPRegion:
    name: str | None
    rectangle: str | None

    def ours(self, owned_rects: set[str]) -> bool:
        return self.rectangle is not None and self.rectangle in owned_rects


def mp_regions(props: dict[str, object]) -> list[RawMPRegion]:
    info = props.get(k(MP, "RegionInfo"))
    if not isinstance(info, Struct):
        return []
    out = []
    for item in items_of(info.get(k(MPRI, "Regions"))):
        if isinstance(item, Struct):
            out.append(
                RawMPRegion(
                    text_of(item.get(k(MPREG, "PersonDisplayName"))) or None,
                    text_of(item.get(k(MPREG, "Rectangle"))),
                )
            )
    return out
