"""Face regions in a sidecar: MWG regions (mwg-rs) and Microsoft MP regions.

Our faces go into the stored frame. A face a person's region already covers is
skipped, and a name a person gave one of our regions is kept until the pipeline
adopts it. Our earlier regions (the MWG ones carrying our FaceID, the MP ones
whose rectangle our ownership list recorded) are cut and written anew; an
existing AppliedToDimensions is kept, with a warning when its shape disagrees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from photovault.sidecar import geometry, schema
from photovault.sidecar.model import FaceRegion, SidecarContent
from photovault.sidecar.rdf import Element, Struct, escape, ns_decls, value_of
from photovault.sidecar.schema import MPREG, MPRI, MWG_RS, PREFIXES, k
from photovault.sidecar.splice import (
    Edits,
    MergeRefused,
    append_items,
    array_of,
    list_items,
    struct_container,
    struct_field,
)


@dataclass
class PlacedFace:
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


def place_faces(
    content: SidecarContent,
    orientation: int,
    old_ours: list[schema.RawRegion],
    foreign_boxes: list[tuple[float, float, float, float]],
) -> tuple[list[PlacedFace], int]:
    """Our faces in the stored frame, minus those a person's region already covers.

    A name a person gave one of our regions elsewhere (region name differs from the
    WrittenName we recorded) wins over an unnamed face, so a re-analysis that
    runs before the pipeline adopted that name cannot erase it. A video gets no
    regions at all (our earlier ones, if any, are still cut by the caller).
    """
    placed: list[PlacedFace] = []
    skipped = 0
    if content.is_video:
        return placed, skipped
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
        placed.append(PlacedFace(box, name, face.name, face_id, face.confidence, face.model))
    return placed, skipped


def check_dims(dims: tuple[float, float], stored: tuple[int, int], warnings: list[str]) -> None:
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


# ----------------------------------------------------------------- merging
def merge_mwg(
    ed: Edits,
    prop: Element | None,
    placed: list[PlacedFace],
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
    container = struct_container(prop)
    if container is None:
        if placed:
            raise MergeRefused("mwg-rs:Regions is not a struct we can extend")
        return
    region_list = struct_field(container, MWG_RS, "RegionList")
    array = array_of(region_list) if region_list is not None else None
    if region_list is not None and array is None:
        raise MergeRefused("mwg-rs:RegionList is not an RDF array")
    if array is not None:
        for li in list_items(array):
            if schema.parse_region(value_of(li), None).ours:
                ed.cut(li.start, li.end)
        append_items(ed, array, [_region_xml(f, array.scope, analyzed_at) for f in placed])
    if not placed:
        return
    add = []
    if dims is None and struct_field(container, MWG_RS, "AppliedToDimensions") is None:
        add.append(_dims_xml(stored_size))
    if array is None:
        items = "".join(_region_xml(f, container.scope, analyzed_at) for f in placed)
        add.append(f"<mwg-rs:RegionList><rdf:Bag>{items}</rdf:Bag></mwg-rs:RegionList>")
    if add:
        decl = ns_decls(container.scope, {p: PREFIXES[p] for p in ("rdf", "mwg-rs", "stDim")})
        # a wrapper-free insertion: declare prefixes on each new field element
        text = "".join(a.replace(">", decl + ">", 1) for a in add)
        ed.put(container.content_end, text)


def merge_mp(
    ed: Edits,
    prop: Element | None,
    placed: list[PlacedFace],
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
    container = struct_container(prop)
    if container is None:
        if placed:
            raise MergeRefused("MP:RegionInfo is not a struct we can extend")
        return
    regions = struct_field(container, MPRI, "Regions")
    array = array_of(regions) if regions is not None else None
    if regions is not None and array is None:
        raise MergeRefused("MPRI:Regions is not an RDF array")
    if array is not None:
        for li in list_items(array):
            item = value_of(li)
            rect = (
                schema.text_of(item.get(k(MPREG, "Rectangle")))
                if isinstance(item, Struct)
                else None
            )
            if rect is not None and rect in owned_rects:
                ed.cut(li.start, li.end)
        append_items(ed, array, [_mp_region_xml(f, array.scope) for f in placed])
    elif placed:
        decl = ns_decls(container.scope, {p: PREFIXES[p] for p in ("rdf", "MPRI")})
        items = "".join(_mp_region_xml(f, container.scope) for f in placed)
        ed.put(
            container.content_end, f"<MPRI:Regions{decl}><rdf:Bag>{items}</rdf:Bag></MPRI:Regions>"
        )


# ----------------------------------------------------------------- serializing
def _region_xml(face: PlacedFace, scope: dict[str, str], analyzed_at: str) -> str:
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


def _mp_region_xml(face: PlacedFace, scope: dict[str, str]) -> str:
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
