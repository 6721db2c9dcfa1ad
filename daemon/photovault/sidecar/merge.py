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

This module holds the order of the steps; beside it are `splice` (the byte
edits and element helpers), `merge_place` (place fields), `merge_faces` (MWG
and MP regions) and `foreign` (what is not ours, and the before/after check).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from photovault.sidecar import geometry, schema
from photovault.sidecar.foreign import ARRAY_KIND, MANAGED, foreign_loss, foreign_view
from photovault.sidecar.merge_faces import check_dims, merge_mp, merge_mwg, place_faces
from photovault.sidecar.merge_place import merge_place, place_values, xml_text
from photovault.sidecar.model import SidecarContent
from photovault.sidecar.rdf import (
    RDF,
    XmpSyntaxError,
    descriptions,
    escape,
    find_rdf,
    ns_decls,
    parse_xml,
    properties,
)
from photovault.sidecar.schema import DC, DIGIKAM, LR, MP, MWG_RS, PREFIXES, PV, k
from photovault.sidecar.splice import (
    Edits,
    MergeRefused,
    append_items,
    array_of,
    array_xml,
    cut_property,
    find_property,
    indent_before,
    li_text,
    list_items,
)

log = logging.getLogger(__name__)

__all__ = [
    "ARRAY_KIND",
    "MANAGED",
    "SKELETON",
    "MergeRefused",
    "MergeResult",
    "foreign_loss",
    "foreign_view",
    "merge",
    "place_values",
    "xml_text",
]


SKELETON = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Photo Vault">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()


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
    ed = Edits(source)
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
        prop, as_attr = find_property(descs, ns, local)
        if as_attr:
            if desired or owned_before:
                raise MergeRefused(f"{local} is written as an attribute, not an array")
            continue
        array = array_of(prop) if prop is not None else None
        if prop is not None and array is None:
            if desired or owned_before:
                raise MergeRefused(f"{local} is not an RDF array")
            continue
        lis = list_items(array) if array is not None else []
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
            cut_property(ed, descs, prop)  # emptied by us: no empty array left behind
        else:
            for li in cuts:
                ed.cut(li.start, li.end)
        if array is not None:
            append_items(ed, array, [li_text(t) for t in to_add])
        elif to_add:
            new_props.append(
                array_xml(
                    f"{_prefix_for(ns)}:{local}",
                    ARRAY_KIND[k(ns, local)],
                    [li_text(t) for t in to_add],
                    indent,
                )
            )

    # 3. place fields, where the file has none of its own
    place_after, person_after = merge_place(
        ed, descs, props, content.place, result.person_fields, new_props
    )

    # 4. faces: MWG regions and Microsoft MP regions. A video has none (no standard
    #    has time-based regions) and leaves those in the file alone: with base naming
    #    `IMG_1.MP4` shares `IMG_1.xmp` with `IMG_1.JPG`, whose regions they are.
    if content.is_video:
        owned_after["MPRegions"] = sorted(schema.owned(props, "MPRegions"))
    else:
        mwg_prop, mwg_attr = find_property(descs, MWG_RS, "Regions")
        mp_prop, mp_attr = find_property(descs, MP, "RegionInfo")
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
        placed, result.faces_skipped = place_faces(content, orientation, old_ours, foreign_boxes)
        result.faces_written = len(placed)
        if dims and placed:
            check_dims(dims, stored_size, result.warnings)
        merge_mwg(ed, mwg_prop, placed, stored_size, dims, content.analyzed_at, new_props, indent)
        owned_after["MPRegions"] = [f.mp_rect for f in placed]
        merge_mp(ed, mp_prop, placed, owned_rects, new_props, indent)

    # 5. new Descriptions: absent managed properties, then our namespace
    about = descs[0].rdf_attr("about") if descs else ""
    last = rdf.children[-1] if rdf.children else None
    pos = last.end if last is not None else rdf.content_start
    block_indent = indent_before(source, last) if last is not None else "\n "
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
            parts.append(array_xml(f"photovault:{local}", "Bag", [li_text(t) for t in items], i))
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
        parts.append(array_xml("photovault:KeywordDetails", "Bag", details, i))
    parts.append("\n </rdf:Description>")
    return "".join(parts)
