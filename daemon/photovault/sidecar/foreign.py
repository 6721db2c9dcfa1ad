"""What of a packet is not ours, and whether a merge kept all of it.

`foreign_view` is the packet minus our properties, keyword items, regions and
place values; `foreign_loss` compares two views, allowing only the managed
properties and fields a merge may add.
"""

from __future__ import annotations

from photovault.sidecar import schema
from photovault.sidecar.rdf import Arr, Lit, Struct
from photovault.sidecar.schema import DC, DIGIKAM, LR, MP, MPREG, MPRI, MWG_RS, PV, k

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
