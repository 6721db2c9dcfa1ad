"""The XMP vocabulary we read and write, and how to interpret a parsed packet.

Kept apart from the reader and writer so both agree on one definition of "ours":
our top-level properties in the `photovault` namespace list the keyword items we
added, every face region we added carries our ``photovault:FaceID`` inside the
MWG ``Extensions`` struct, and a place field (photoshop:City ...) is ours while
it still holds the value our ``photovault:Written<Field>`` recorded. Anything
else belongs to a person or another program.
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
PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"

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
    "photoshop": PHOTOSHOP,
    "Iptc4xmpCore": IPTC_CORE,
    "photovault": PV,
}

#: Keyword arrays we merge into: (namespace, property, our ownership list, separator).
KEYWORD_ARRAYS = (
    (DC, "subject", "Subjects", None),
    (LR, "hierarchicalSubject", "HierarchicalSubjects", "|"),
    (DIGIKAM, "TagsList", "TagsList", "/"),
)

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class PlaceField:
    """One location field we fill in where the sidecar has none of its own.

    `record` is our property that holds the value we wrote (photovault:WrittenCity):
    while the field still holds it, the field is ours to update or remove; once a
    person changed or removed it, its name goes to `PERSON_FIELDS` and we never
    write it again. `exiftool` is the tag as ``exiftool -G1`` names it.
    """

    ns: str
    local: str
    prefix: str
    record: str
    exiftool: str

    @property
    def name(self) -> str:
        return f"{self.prefix}:{self.local}"


#: The place fields Lightroom, digiKam and exiftool show as the location.
PLACE_FIELDS = (
    PlaceField(PHOTOSHOP, "City", "photoshop", "WrittenCity", "XMP-photoshop:City"),
    PlaceField(PHOTOSHOP, "State", "photoshop", "WrittenState", "XMP-photoshop:State"),
    PlaceField(PHOTOSHOP, "Country", "photoshop", "WrittenCountry", "XMP-photoshop:Country"),
    PlaceField(
        IPTC_CORE, "CountryCode", "Iptc4xmpCore", "WrittenCountryCode", "XMP-iptcCore:CountryCode"
    ),
)
#: Our bag of place fields a person changed or removed after our write ("photoshop:City").
PERSON_FIELDS = "PersonFields"


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


def written_place(props: dict[str, object]) -> dict[str, str]:
    """Place field name ("photoshop:City") -> the value our last write put there."""
    out = {}
    for f in PLACE_FIELDS:
        text = text_of(props.get(k(PV, f.record)))
        if text:
            out[f.name] = text
    return out


def place_field_is_ours(value: object, written: str | None) -> bool:
    """Whether a place field's value is still the one we wrote (`written`)."""
    return written is not None and isinstance(value, Lit) and value.text == written


def place_fields(props: dict[str, object]) -> dict[str, tuple[str, bool]]:
    """Place field name -> (its text, ours) for the place fields the packet holds."""
    written = written_place(props)
    out = {}
    for f in PLACE_FIELDS:
        value = props.get(k(f.ns, f.local))
        if isinstance(value, Lit) and value.text:
            out[f.name] = (value.text, place_field_is_ours(value, written.get(f.name)))
    return out
