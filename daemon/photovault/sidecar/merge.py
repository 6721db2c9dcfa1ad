"""Merge our content into a sidecar's bytes by splicing, never by re-serializing.

Why splicing: every XMP library we tried changes foreign data when it rewrites a
packet. Exempi drops tiff/exif alias properties, rewrites lang-alts, drops a
non-empty rdf:about and turns a Seq into a Bag; exiftool drops empty arrays
(darktable's ``<rdf:Seq/>``) and "fixes" namespace URIs. So we do not rewrite
anything we do not own: the new file is the old file with

* the elements of our earlier write cut out (our ``photovault:*`` properties, the
  keyword ``rdf:li`` items our ownership lists name, the regions carrying our
  FaceID, the MP regions whose rectangle we recorded), and
* new elements inserted (keyword items, region items, and one
  ``rdf:Description`` holding our namespace).

Place fields (photoshop:City, photoshop:State, photoshop:Country,
Iptc4xmpCore:CountryCode) are filled in only where the file has no value of its
own (and not at all when the file names another country). Our namespace
records the value we wrote (``photovault:WrittenCity`` ...): while a field
still holds it, it is ours and follows our result (updated, or removed when we
no longer know it); a field of ours a person changed or removed goes to
``photovault:PersonFields`` and is never written by us again. The recognized
text is ``photovault:Text``, in our block.

A keyword array that our cuts leave without any item is cut out whole, property
element included: an empty ``<rdf:Bag>`` with only white space in it reads in
exiftool as a value of white space. An empty array that was already there is
foreign and stays.

A keyword our ownership lists name but the file no longer holds was removed by a
person (`schema.removed_keywords`): it is not written again, and
`MergeResult.rejected` lists it so the caller can remember the decision.

Every other byte is kept in place, which is what makes "nothing foreign changed"
provable: `foreign_view` of the packet before and after must be equal, and the
writer checks exactly that (plus an exiftool read-back) before committing.

A packet shaped in a way we cannot edit safely raises `MergeRefused`; the writer
then leaves the file untouched and reports why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from dataclasses import dataclass, field

from photovault.results import Place
from photovault.sidecar import geometry, schema
from photovault.sidecar.model import FaceRegion, SidecarContent
from photovault.sidecar.rdf import (
    RDF,
    Arr,
    Element,
    Lit,
    Struct,
    XmpSyntaxError,
    descriptions,
    escape,
    find_rdf,
    leading_space,
    ns_decls,
    parse_xml,
    properties,
    value_of,
)
from photovault.sidecar.schema import (
    DC,
    DIGIKAM,
    LR,
    MP,
    MPREG,
    MPRI,
    MWG_RS,
    PREFIXES,
    PV,
    k,
)

log = logging.getLogger(__name__)

SKELETON = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Photo Vault">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()

#: Keyword array kinds when we create the property (what digiKam/Lightroom write).
ARRAY_KIND = {
    k(DC, "subject"): "Bag",
    k(LR, "hierarchicalSubject"): "Bag",
    k(DIGIKAM, "TagsList"): "Seq",
}

MANAGED = {
    k(DC, "subject"),
    k(LR, "hierarchicalSubject"),
    k(DIGIKAM, "TagsList"),
    k(MWG_RS, "Regions"),
    k(MP, "RegionInfo"),
}


class MergeRefused(Exception):
    """The sidecar cannot be merged safely; it must be left untouched."""


@dataclass
class MergeResult:
    data: bytes
    warnings: list[str] = field(default_factory=list)
    #: Items we removed from foreign-visible arrays, by exiftool tag name (for the
    #: writer's exiftool check): "XMP-dc:Subject" -> [...]
    removed: dict[str, list[str]] = field(default_factory=dict)
    faces_written: int = 0
    faces_skipped: int = 0
    #: Keyword paths of ours a person removed from the file since our last write.
    rejected: list[tuple[str, ...]] = field(default_factory=list)
    #: Place fields of ours ("photoshop:City") a person changed or removed since
    #: our last write: theirs from now on (kept in photovault:PersonFields).
    person_fields: list[str] = field(default_factory=list)


@dataclass
class _Edits:
    data: bytes
    edits: list[tuple[int, int, str]] = field(default_factory=list)

    def cut(self, start: int, end: int) -> None:
        self.edits.append((leading_space(self.data, start), end, ""))

    def put(self, pos: int, text: str) -> None:
        self.edits.append((pos, pos, text))

    def replace(self, start: int, end: int, text: str) -> None:
        self.edits.append((start, end, text))

    def apply(self) -> bytes:
        out, pos = [], 0
        for start, end, text in sorted(self.edits, key=lambda e: (e[0], e[1])):
            if start < pos:
                raise MergeRefused("internal error: overlapping edits")
            out.append(self.data[pos:start])
            out.append(text.encode("utf-8"))
            pos = end
        out.append(self.data[pos:])
        return b"".join(out)


def _indent(data: bytes, el: Element) -> str:
    """The whitespace before `el`, reused for new siblings so files stay tidy."""
    ws = data[leading_space(data, el.start) : el.start].decode("utf-8", "replace")
    return ws if ws else " "


def _qn(el: Element) -> str:
    return f"{el.prefix}:{el.local}" if el.prefix else el.local


# ----------------------------------------------------------------- locating
def _find_property(descs: list[Element], ns: str, local: str) -> tuple[Element | None, bool]:
    """(element, False) when found as element, (desc, True) when an attribute."""
    for desc in descs:
        for child in desc.children:
            if child.is_(ns, local):
                return child, False
        if (ns, local) in desc.attrs:
            return desc, True
    return None, False


def _array_of(prop: Element) -> Element | None:
    for child in prop.children:
        if child.ns == RDF and child.local in ("Bag", "Seq", "Alt"):
            return child
    return None


def _struct_container(prop: Element) -> Element | None:
    """Where the fields of a struct property live as child elements."""
    if prop.rdf_attr("parseType") == "Resource" and not prop.empty:
        return prop
    for child in prop.children:
        if child.is_(RDF, "Description") and not child.empty:
            return child
    return None


def _struct_field(container: Element, ns: str, local: str) -> Element | None:
    for child in container.children:
        if child.is_(ns, local):
            return child
    return None


def _lis(array: Element) -> list[Element]:
    return [c for c in array.children if c.is_(RDF, "li")]


def _append_items(ed: _Edits, array: Element, items: list[str]) -> None:
    """Insert serialized rdf:li items at the end of an existing array element."""
    if not items:
        return
    lis = _lis(array)
    if array.empty:
        indent = _indent(ed.data, array)
        body = "".join(f"{indent} {item}" for item in items)
        qn = _qn(array)
        decl = ns_decls(array.scope, {array.prefix: RDF}) if array.prefix else ""
        ed.replace(array.start, array.end, f"<{qn}{decl}>{body}{indent}</{qn}>")
        return
    if lis:
        indent = _indent(ed.data, lis[-1])
        ed.put(lis[-1].end, "".join(f"{indent}{item}" for item in items))
    else:
        indent = _indent(ed.data, array) + " "
        ed.put(array.content_start, "".join(f"{indent}{item}" for item in items))


def _cut_property(ed: _Edits, descs: list[Element], prop: Element) -> None:
    """Cut a property element; its rdf:Description too when it held nothing else."""
    for desc in descs:
        if any(child is prop for child in desc.children):
            foreign_attrs = [
                a
                for a in desc.attrs
                if a[0] not in (RDF, "") and not a[0].startswith("http://www.w3.org/XML/")
            ]
            if len(desc.children) == 1 and not foreign_attrs:
                ed.cut(desc.start, desc.end)
                return
            break
    ed.cut(prop.start, prop.end)


# ----------------------------------------------------------------- serializing
def _li_text(text: str) -> str:
    return f"<rdf:li>{escape(text)}</rdf:li>"


def _array_xml(qn: str, kind: str, items: list[str], indent: str) -> str:
    inner = "".join(f"{indent}  {item}" for item in items)
    return f"{indent}<{qn}>{indent} <rdf:{kind}>{inner}{indent} </rdf:{kind}>{indent}</{qn}>"


def _region_xml(face: _PlacedFace, scope: dict[str, str], analyzed_at: str) -> str:
    decl = ns_decls(scope, {p: PREFIXES[p] for p in ("rdf", "mwg-rs", "stArea", "photovault")})
    cx, cy, w, h = (geometry.format_number(v) for v in geometry.to_centre(face.box))
    parts = [f'<rdf:li rdf:parseType="Resource"{decl}>', "<mwg-rs:Type>Face</mwg-rs:Type>"]
    if face.name:
        parts.append(f"<mwg-rs:Name>{escape(face.name)}</mwg-rs:Name>")
    parts.append(
        '<mwg-rs:Area rdf:parseType="Resource">'
        f"<stArea:x>{cx}</stArea:x><stArea:y>{cy}</stArea:y>"
        f"<stArea:w>{w}</stArea:w><stArea:h>{h}</stArea:h>"
        "<stArea:unit>normalized</stArea:unit></mwg-rs:Area>"
    )
    ext = [f"<photovault:FaceID>{escape(face.face_id)}</photovault:FaceID>"]
    if face.confidence is not None:
        ext.append(
            f"<photovault:Confidence>{geometry.format_number(face.confidence)}"
            "</photovault:Confidence>"
        )
    if face.model:
        ext.append(f"<photovault:Model>{escape(face.model)}</photovault:Model>")
    if analyzed_at:
        ext.append(f"<photovault:AnalyzedAt>{escape(analyzed_at)}</photovault:AnalyzedAt>")
    written = escape(face.written_name or "")
    ext.append(f"<photovault:WrittenName>{written}</photovault:WrittenName>")
    parts.append('<mwg-rs:Extensions rdf:parseType="Resource">' + "".join(ext))
    parts.append("</mwg-rs:Extensions></rdf:li>")
    return "".join(parts)


def _mp_region_xml(face: _PlacedFace, scope: dict[str, str]) -> str:
    decl = ns_decls(scope, {p: PREFIXES[p] for p in ("rdf", "MPReg")})
    parts = [f'<rdf:li rdf:parseType="Resource"{decl}>']
    if face.name:
        parts.append(f"<MPReg:PersonDisplayName>{escape(face.name)}</MPReg:PersonDisplayName>")
    parts.append(f"<MPReg:Rectangle>{face.mp_rect}</MPReg:Rectangle></rdf:li>")
    return "".join(parts)


def _dims_xml(stored_size: tuple[int, int]) -> str:
    w, h = stored_size
    return (
        '<mwg-rs:AppliedToDimensions rdf:parseType="Resource">'
        f"<stDim:w>{w}</stDim:w><stDim:h>{h}</stDim:h><stDim:unit>pixel</stDim:unit>"
        "</mwg-rs:AppliedToDimensions>"
    )


# ----------------------------------------------------------------- faces
@dataclass
class _PlacedFace:
    box: tuple[float, float, float, float]  # stored frame, top-left
    name: str | None
    written_name: str | None
    face_id: str
    confidence: float | None
    model: str | None

    @property
    def mp_rect(self) -> str:
        return geometry.mp_rectangle(self.box)


def _face_id(face: FaceRegion, box: tuple[float, float, float, float]) -> str:
    if face.face_id:
        return face.face_id
    digest = hashlib.sha1(geometry.mp_rectangle(box).encode()).hexdigest()[:12]
    return f"box-{digest}"


def _place_faces(
    content: SidecarContent,
    orientation: int,
    old_ours: list[schema.RawRegion],
    foreign_boxes: list[tuple[float, float, float, float]],
) -> tuple[list[_PlacedFace], int]:
    """Our faces in the stored frame, minus those a person's region already covers.

    A name a person gave one of our regions elsewhere (region name differs from the
    WrittenName we recorded) wins over an unnamed face, so a re-analysis that
    runs before the pipeline adopted that name cannot erase it.
    """
    placed, skipped = [], 0
    old_boxes = [(r, geometry.from_centre(r.area)) for r in old_ours if r.area]
    for face in content.faces:
        box = geometry.clamp(geometry.oriented_to_stored(face.box, orientation))
        if box[2] <= 0 or box[3] <= 0:
            continue
        if any(geometry.iou(box, fb) >= 0.5 for fb in foreign_boxes):
            skipped += 1
            continue
        face_id = _face_id(face, box)
        old = next((r for r in old_ours if r.face_id == face_id), None)
        if old is None and face.face_id is None and old_boxes:
            best = max(old_boxes, key=lambda rb: geometry.iou(rb[1], box))
            old = best[0] if geometry.iou(best[1], box) >= 0.5 else None
        name = face.name
        if old is not None and old.name != old.written_name:
            name = old.name  # a person's edit not yet adopted by the pipeline
        placed.append(_PlacedFace(box, name, face.name, face_id, face.confidence, face.model))
    return placed, skipped


# ----------------------------------------------------------------- views
def foreign_view(props: dict[str, object]) -> dict[str, object]:
    """The packet minus everything that is ours, for before/after comparison."""
    out: dict[str, object] = {}
    written = schema.written_place(props)
    place_keys = {k(f.ns, f.local): f.name for f in schema.PLACE_FIELDS}
    for key, value in props.items():
        if key.startswith(PV):
            continue
        if key in place_keys and schema.place_field_is_ours(value, written.get(place_keys[key])):
            continue
        for ns, local, own, _sep in schema.KEYWORD_ARRAYS:
            if key == k(ns, local) and isinstance(value, Arr):
                mine = schema.owned(props, own)
                value = Arr(
                    value.kind,
                    tuple(i for i in value.items if not (isinstance(i, Lit) and i.text in mine)),
                )
        if key == k(MWG_RS, "Regions") and isinstance(value, Struct):
            value = _filter_struct_list(
                value,
                k(MWG_RS, "RegionList"),
                lambda item: schema.parse_region(item, None).ours,
            )
        if key == k(MP, "RegionInfo") and isinstance(value, Struct):
            rects = schema.owned(props, "MPRegions")
            value = _filter_struct_list(
                value,
                k(MPRI, "Regions"),
                lambda item, rects=rects: (
                    isinstance(item, Struct)
                    and schema.text_of(item.get(k(MPREG, "Rectangle"))) in rects
                ),
            )
        out[key] = value
    return out


def _filter_struct_list(value: Struct, field_name: str, is_ours) -> Struct:
    fields = []
    for name, fv in value.fields:
        if name == field_name and isinstance(fv, Arr):
            fv = Arr(fv.kind, tuple(i for i in fv.items if not is_ours(i)))
        fields.append((name, fv))
    return Struct(tuple(fields))


def foreign_loss(before: dict[str, object], after: dict[str, object]) -> str | None:
    """None when `after` keeps all foreign data of `before`, else what changed.

    Foreign properties must be equal. Region structs may only gain the
    AppliedToDimensions/RegionList fields we add; properties new in `after` must be
    ones we manage and hold nothing foreign.
    """
    fb, fa = foreign_view(before), foreign_view(after)
    for key, value in fb.items():
        if key not in fa:
            if key in ARRAY_KIND and _empty_or_ours(value, key):
                continue  # a keyword array we emptied and cut out
            return f"{key} is gone"
        new = fa[key]
        if isinstance(value, Struct) and isinstance(new, Struct) and key in MANAGED:
            new_fields = dict(new.fields)
            for name, fv in value.fields:
                if new_fields.get(name) != fv:
                    return f"{key}/{name} changed"
            for name in set(new_fields) - {n for n, _ in value.fields}:
                if not _empty_or_ours(new_fields[name], name):
                    return f"{key}/{name} appeared with foreign content"
        elif new != value:
            return f"{key} changed"
    for key in set(fa) - set(fb):
        if key not in MANAGED or not _empty_or_ours(fa[key], key):
            return f"{key} appeared with foreign content"
    return None


def _empty_or_ours(value: object, name: str) -> bool:
    if isinstance(value, Arr):
        return not value.items
    if isinstance(value, Struct):
        return all(
            _empty_or_ours(v, n) or n == k(MWG_RS, "AppliedToDimensions") for n, v in value.fields
        )
    return name == k(MWG_RS, "AppliedToDimensions")


# ----------------------------------------------------------------- merge
def merge(
    data: bytes | None,
    content: SidecarContent,
    stored_size: tuple[int, int],
    orientation: int,
) -> MergeResult:
    """New sidecar bytes: `data` (None = no sidecar yet) with our content replaced.

    Raises `MergeRefused` when the packet cannot be edited safely.
    """
    geometry._check(orientation)
    source = SKELETON if data is None else data
    try:
        root = parse_xml(source)
        rdf = find_rdf(root)
    except XmpSyntaxError as err:
        raise MergeRefused(str(err)) from err
    if rdf.empty:
        raise MergeRefused("empty rdf:RDF element written as <rdf:RDF/>")
    props = properties(rdf)
    descs = descriptions(rdf)
    ed = _Edits(source)
    result = MergeResult(b"", rejected=schema.removed_keywords(props))
    if result.rejected:
        gone = set(result.rejected)
        content = dataclasses.replace(
            content, keywords=tuple(kw for kw in content.keywords if kw.path not in gone)
        )
    new_props: list[str] = []  # managed properties absent so far (serialized)
    indent = "\n  "

    # 1. our own top-level properties: cut them (whole Description when only ours)
    for desc in descs:
        children_ours = [c for c in desc.children if c.ns == PV]
        attrs_ours = [a for a in desc.attr_spans if a[0] == PV]
        if not children_ours and not attrs_ours:
            continue
        foreign_attrs = [
            a
            for a in desc.attrs
            if a[0] not in (PV, RDF, "") and not a[0].startswith("http://www.w3.org/XML/")
        ]
        if len(children_ours) == len(desc.children) and not foreign_attrs:
            ed.cut(desc.start, desc.end)
            continue
        for child in children_ours:
            ed.cut(child.start, child.end)
        for attr in attrs_ours:
            ed.replace(*desc.attr_spans[attr], "")

    # 2. keywords
    owned_after: dict[str, list[str]] = {}
    for ns, local, own, sep in schema.KEYWORD_ARRAYS:
        desired = list(
            dict.fromkeys(kw.leaf if sep is None else sep.join(kw.path) for kw in content.keywords)
        )
        owned_before = schema.owned(props, own)
        prop, as_attr = _find_property(descs, ns, local)
        if as_attr:
            if desired or owned_before:
                raise MergeRefused(f"{local} is written as an attribute, not an array")
            continue
        array = _array_of(prop) if prop is not None else None
        if prop is not None and array is None:
            if desired or owned_before:
                raise MergeRefused(f"{local} is not an RDF array")
            continue
        lis = _lis(array) if array is not None else []
        removed, present, cuts = [], [], []
        for li in lis:
            text = li.text if not li.children else None
            if text is not None and text in owned_before and text not in desired:
                cuts.append(li)
                removed.append(text)
            elif text is not None:
                present.append(text)
        to_add = [d for d in desired if d not in present]
        owned_after[own] = [d for d in desired if d in owned_before and d in present] + to_add
        if removed:
            result.removed[_exiftool_tag(ns, local)] = removed
        if prop is not None and cuts and len(cuts) == len(lis) and not to_add:
            _cut_property(ed, descs, prop)  # emptied by us: no empty array left behind
        else:
            for li in cuts:
                ed.cut(li.start, li.end)
        if array is not None:
            _append_items(ed, array, [_li_text(t) for t in to_add])
        elif to_add:
            new_props.append(
                _array_xml(
                    f"{_prefix_for(ns)}:{local}",
                    ARRAY_KIND[k(ns, local)],
                    [_li_text(t) for t in to_add],
                    indent,
                )
            )

    # 3. place fields, where the file has none of its own
    place_after, person_after = _merge_place(ed, descs, props, content.place, result, new_props)

    # 4. faces: MWG regions and Microsoft MP regions
    mwg_prop, mwg_attr = _find_property(descs, MWG_RS, "Regions")
    mp_prop, mp_attr = _find_property(descs, MP, "RegionInfo")
    if mwg_attr or mp_attr:
        raise MergeRefused("region info written as an attribute")
    regions = schema.mwg_regions(props)
    dims = schema.applied_dims(props)
    old_ours = [r for r in regions if r.ours]
    foreign_boxes = [geometry.from_centre(r.area) for r in regions if not r.ours and r.area]
    owned_rects = schema.owned(props, "MPRegions")
    mp_found = schema.mp_regions(props)
    for mp in mp_found:
        rect = geometry.parse_mp_rectangle(mp.rectangle or "")
        if rect and not mp.ours(owned_rects):
            foreign_boxes.append(rect)
    placed, result.faces_skipped = _place_faces(content, orientation, old_ours, foreign_boxes)
    result.faces_written = len(placed)
    if dims and placed:
        _check_dims(dims, stored_size, result.warnings)
    _merge_mwg(ed, mwg_prop, placed, stored_size, dims, content.analyzed_at, new_props, indent)
    owned_after["MPRegions"] = [f.mp_rect for f in placed]
    _merge_mp(ed, mp_prop, placed, owned_rects, new_props, indent)

    # 5. new Descriptions: absent managed properties, then our namespace
    about = descs[0].rdf_attr("about") if descs else ""
    last = rdf.children[-1] if rdf.children else None
    pos = last.end if last is not None else rdf.content_start
    block_indent = _indent(source, last) if last is not None else "\n "
    if new_props:
        decl = ns_decls(
            rdf.scope,
            {
                p: PREFIXES[p]
                for p in (
                    "rdf",
                    "dc",
                    "lr",
                    "digiKam",
                    "mwg-rs",
                    "stArea",
                    "stDim",
                    "MP",
                    "MPRI",
                    "MPReg",
                    "photoshop",
                    "Iptc4xmpCore",
                    "photovault",
                )
                if any(f"<{p}:" in x for x in new_props)
            },
        )
        ed.put(
            pos,
            f'{block_indent}<rdf:Description rdf:about="{escape(about or "")}"{decl}>'
            + "".join(new_props)
            + f"{block_indent}</rdf:Description>",
        )
    block = _our_block(content, owned_after, place_after, person_after, about or "", rdf.scope)
    ed.put(pos, block_indent + block)
    result.data = ed.apply()
    try:
        after = properties(find_rdf(parse_xml(result.data)))
    except XmpSyntaxError as err:  # pragma: no cover - would be a bug in this module
        raise MergeRefused(f"internal error: merged packet does not parse: {err}") from err
    loss = foreign_loss(props, after)
    if loss:
        raise MergeRefused(f"merge would change foreign data ({loss})")
    return result


def _prefix_for(ns: str) -> str:
    return next(p for p, uri in PREFIXES.items() if uri == ns)


def _exiftool_tag(ns: str, local: str) -> str:
    return {
        DC: "XMP-dc:Subject",
        LR: "XMP-lr:HierarchicalSubject",
        DIGIKAM: "XMP-digiKam:TagsList",
    }[ns]


def _check_dims(dims: tuple[float, float], stored: tuple[int, int], warnings: list[str]) -> None:
    """Existing AppliedToDimensions is kept; say so when its shape disagrees."""
    w, h = dims
    sw, sh = stored
    if abs(w / h - sw / sh) > 0.01 * (sw / sh):
        if abs(w / h - sh / sw) <= 0.01 * (sh / sw):
            warnings.append(
                f"AppliedToDimensions {w:g}x{h:g} is the rotated shape of the stored "
                f"image {sw}x{sh}; another program may have used the oriented frame"
            )
        else:
            warnings.append(f"AppliedToDimensions {w:g}x{h:g} does not match the image {sw}x{sh}")


def _merge_mwg(
    ed: _Edits,
    prop: Element | None,
    placed: list[_PlacedFace],
    stored_size: tuple[int, int],
    dims: tuple[float, float] | None,
    analyzed_at: str,
    new_props: list[str],
    indent: str,
) -> None:
    if prop is None:
        if placed:
            items = "".join(f"{indent}   {_region_xml(f, PREFIXES, analyzed_at)}" for f in placed)
            new_props.append(
                f'{indent}<mwg-rs:Regions rdf:parseType="Resource">{indent} '
                f"{_dims_xml(stored_size)}{indent} <mwg-rs:RegionList>{indent}  <rdf:Bag>"
                f"{items}{indent}  </rdf:Bag>{indent} </mwg-rs:RegionList>{indent}"
                "</mwg-rs:Regions>"
            )
        return
    container = _struct_container(prop)
    if container is None:
        if placed:
            raise MergeRefused("mwg-rs:Regions is not a struct we can extend")
        return
    region_list = _struct_field(container, MWG_RS, "RegionList")
    array = _array_of(region_list) if region_list is not None else None
    if region_list is not None and array is None:
        raise MergeRefused("mwg-rs:RegionList is not an RDF array")
    if array is not None:
        for li in _lis(array):
            if schema.parse_region(value_of(li), None).ours:
                ed.cut(li.start, li.end)
        _append_items(ed, array, [_region_xml(f, array.scope, analyzed_at) for f in placed])
    if not placed:
        return
    add = []
    if dims is None and _struct_field(container, MWG_RS, "AppliedToDimensions") is None:
        add.append(_dims_xml(stored_size))
    if array is None:
        items = "".join(_region_xml(f, container.scope, analyzed_at) for f in placed)
        add.append(f"<mwg-rs:RegionList><rdf:Bag>{items}</rdf:Bag></mwg-rs:RegionList>")
    if add:
        decl = ns_decls(container.scope, {p: PREFIXES[p] for p in ("rdf", "mwg-rs", "stDim")})
        # a wrapper-free insertion: declare prefixes on each new field element
        text = "".join(a.replace(">", decl + ">", 1) for a in add)
        ed.put(container.content_end, text)


def _merge_mp(
    ed: _Edits,
    prop: Element | None,
    placed: list[_PlacedFace],
    owned_rects: set[str],
    new_props: list[str],
    indent: str,
) -> None:
    if prop is None:
        if placed:
            items = "".join(f"{indent}   {_mp_region_xml(f, PREFIXES)}" for f in placed)
            new_props.append(
                f'{indent}<MP:RegionInfo rdf:parseType="Resource">{indent} <MPRI:Regions>'
                f"{indent}  <rdf:Bag>{items}{indent}  </rdf:Bag>{indent} </MPRI:Regions>"
                f"{indent}</MP:RegionInfo>"
            )
        return
    container = _struct_container(prop)
    if container is None:
        if placed:
            raise MergeRefused("MP:RegionInfo is not a struct we can extend")
        return
    regions = _struct_field(container, MPRI, "Regions")
    array = _array_of(regions) if regions is not None else None
    if regions is not None and array is None:
        raise MergeRefused("MPRI:Regions is not an RDF array")
    if array is not None:
        for li in _lis(array):
            item = value_of(li)
            rect = (
                schema.text_of(item.get(k(MPREG, "Rectangle")))
                if isinstance(item, Struct)
                else None
            )
            if rect is not None and rect in owned_rects:
                ed.cut(li.start, li.end)
        _append_items(ed, array, [_mp_region_xml(f, array.scope) for f in placed])
    elif placed:
        decl = ns_decls(container.scope, {p: PREFIXES[p] for p in ("rdf", "MPRI")})
        items = "".join(_mp_region_xml(f, container.scope) for f in placed)
        ed.put(
            container.content_end, f"<MPRI:Regions{decl}><rdf:Bag>{items}</rdf:Bag></MPRI:Regions>"
        )


def _our_block(
    content: SidecarContent,
    owned: dict[str, list[str]],
    place: dict[str, str],
    person_fields: list[str],
    about: str,
    scope: dict[str, str],
) -> str:
    """Our namespace, one Description we replace whole on every write."""
    i = "\n  "
    decl = ns_decls(scope, {"rdf": RDF, "photovault": PV})
    parts = [
        f'<rdf:Description rdf:about="{escape(about)}"{decl}>',
        f"{i}<photovault:SchemaVersion>{schema.SCHEMA_VERSION}</photovault:SchemaVersion>",
    ]
    if content.analyzed_at:
        parts.append(
            f"{i}<photovault:AnalyzedAt>{escape(content.analyzed_at)}</photovault:AnalyzedAt>"
        )
    text = xml_text(content.text or "").strip("\n")
    if text.strip():
        parts.append(f"{i}<photovault:Text>{escape(text)}</photovault:Text>")
    for f in schema.PLACE_FIELDS:
        if f.name in place:
            value = escape(place[f.name])
            parts.append(f"{i}<photovault:{f.record}>{value}</photovault:{f.record}>")
    models = [f"{name}={version}" for name, version in sorted(content.model_versions.items())]
    for local, items in [
        ("Models", models),
        ("Subjects", owned.get("Subjects", [])),
        ("HierarchicalSubjects", owned.get("HierarchicalSubjects", [])),
        ("TagsList", owned.get("TagsList", [])),
        ("MPRegions", owned.get("MPRegions", [])),
        (schema.PERSON_FIELDS, person_fields),
    ]:
        if items:
            parts.append(_array_xml(f"photovault:{local}", "Bag", [_li_text(t) for t in items], i))
    details = []
    for kw in content.keywords:
        fields = [f"<photovault:Path>{escape('|'.join(kw.path))}</photovault:Path>"]
        if kw.confidence is not None:
            fields.append(
                f"<photovault:Confidence>{geometry.format_number(kw.confidence)}"
                "</photovault:Confidence>"
            )
        if kw.source:
            fields.append(f"<photovault:Source>{escape(kw.source)}</photovault:Source>")
        details.append('<rdf:li rdf:parseType="Resource">' + "".join(fields) + "</rdf:li>")
    if details:
        parts.append(_array_xml("photovault:KeywordDetails", "Bag", details, i))
    parts.append("\n </rdf:Description>")
    return "".join(parts)


# ----------------------------------------------------------------- place
#: Characters XML 1.0 cannot carry (control characters, lone surrogates).
_NOT_XML = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` as XML element content can carry it: line breaks as "\\n", and the
    characters XML 1.0 forbids (control characters, lone surrogates) left out."""
    return _NOT_XML.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def place_values(place: Place | None) -> dict[str, str]:
    """Place field name -> the value we want there (fields we know nothing of left out)."""
    if place is None:
        return {}
    values = {
        "photoshop:City": place.city,
        "photoshop:State": place.region,
        "photoshop:Country": place.country,
        "Iptc4xmpCore:CountryCode": place.country_code,
    }
    out = {}
    for name, value in values.items():
        text = " ".join(xml_text(value or "").split())
        if text:
            out[name] = text
    return out


def _simple_element(el: Element) -> bool:
    """A property element holding plain text and nothing else (no rdf:resource, no
    qualifiers, no children): one whose value we can replace in place."""
    return not el.children and not el.empty and not el.attrs


def _merge_place(
    ed: _Edits,
    descs: list[Element],
    props: dict[str, object],
    place: Place | None,
    result: MergeResult,
    new_props: list[str],
) -> tuple[dict[str, str], list[str]]:
    """Fill in, update or remove our place fields; (written values, person fields).

    Per field: one holding a value we did not write (there before us, or one of
    ours a person changed) is theirs, and so is one of ours a person removed
    (remembered in PersonFields): never written by us again. One still holding
    the value we wrote is ours and follows `place` (updated, or removed when we
    no longer know it); an absent one gets our value. But when any field holds a
    value of theirs that is not ours (their City "Strasbourg" beside our Kehl,
    their Country beside ours), adding ours would name two places: then we add
    and change nothing.
    """
    desired = place_values(place)
    written = schema.written_place(props)
    names = [f.name for f in schema.PLACE_FIELDS]
    person = [n for n in names if n in schema.owned(props, schema.PERSON_FIELDS)]
    found = []
    other_place = False
    for f in schema.PLACE_FIELDS:
        current = props.get(k(f.ns, f.local))
        mine = written.get(f.name)
        ours = schema.place_field_is_ours(current, mine)
        prop, as_attr = _find_property(descs, f.ns, f.local)
        editable = prop is not None and (as_attr or _simple_element(prop))
        found.append((f, current, mine, ours, prop, as_attr, editable))
        if mine is not None and not ours and f.name not in person:
            person.append(f.name)  # removed or corrected by a person
            result.person_fields.append(f.name)
        if current is not None and not ours:
            theirs = schema.text_of(current) or ""
            other_place = other_place or theirs.casefold().strip() != (
                desired.get(f.name, "").casefold()
            )
    freeze = bool(desired) and other_place
    written_after: dict[str, str] = {}
    cuts: list[Element] = []
    for f, current, mine, ours, prop, as_attr, editable in found:
        if ours and mine is not None and (freeze or not editable or f.name in person):
            written_after[f.name] = mine  # left as it is, still recorded as ours
            continue
        if freeze or f.name in person or (current is not None and not ours):
            continue
        want = desired.get(f.name)
        if ours and prop is not None:
            if want is None:
                if as_attr:
                    ed.replace(*prop.attr_spans[(f.ns, f.local)], "")
                else:
                    cuts.append(prop)
                continue
            written_after[f.name] = want
            if want == mine:
                continue
            if as_attr:
                start, end = prop.attr_spans[(f.ns, f.local)]
                name = ed.data[start:end].split(b"=", 1)[0].decode("utf-8")
                ed.replace(start, end, f'{name}="{escape(want)}"')
            else:
                ed.replace(prop.content_start, prop.content_end, escape(want))
        elif current is None and want is not None:
            new_props.append(f"\n  <{f.prefix}:{f.local}>{escape(want)}</{f.prefix}:{f.local}>")
            written_after[f.name] = want
    _cut_elements(ed, descs, cuts)
    person.sort(key=names.index)
    return written_after, person


def _cut_elements(ed: _Edits, descs: list[Element], cuts: list[Element]) -> None:
    """Cut property elements; a Description left with nothing is cut whole."""
    for desc in descs:
        mine = [c for c in desc.children if any(c is el for el in cuts)]
        if not mine:
            continue
        foreign_attrs = [
            a
            for a in desc.attrs
            if a[0] not in (RDF, "") and not a[0].startswith("http://www.w3.org/XML/")
        ]
        if len(mine) == len(desc.children) and not foreign_attrs:
            ed.cut(desc.start, desc.end)
        else:
            for el in mine:
                ed.cut(el.start, el.end)
