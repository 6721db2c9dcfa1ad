"""Place fields in a sidecar: photoshop:City, photoshop:State, photoshop:Country
and Iptc4xmpCore:CountryCode, filled in only where the file has no value of its
own (the rules are in `merge_place`), and the text cleaning they share with our
recognized text (`xml_text`).
"""

from __future__ import annotations

import re

from photovault.results import Place
from photovault.sidecar import schema
from photovault.sidecar.rdf import Element, escape
from photovault.sidecar.schema import k
from photovault.sidecar.splice import Edits, cut_elements, find_property

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


def merge_place(
    ed: Edits,
    descs: list[Element],
    props: dict[str, object],
    place: Place | None,
    newly_person: list[str],
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

    A field of ours a person changed or removed since our last write is
    appended to `newly_person` (the caller's `MergeResult.person_fields`).
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
        prop, as_attr = find_property(descs, f.ns, f.local)
        editable = prop is not None and (as_attr or _simple_element(prop))
        found.append((f, current, mine, ours, prop, as_attr, editable))
        if mine is not None and not ours and f.name not in person:
            person.append(f.name)  # removed or corrected by a person
            newly_person.append(f.name)
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
    cut_elements(ed, descs, cuts)
    person.sort(key=names.index)
    return written_after, person
