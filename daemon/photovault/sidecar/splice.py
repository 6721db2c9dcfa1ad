"""Byte-level edits of an XMP packet, and the element helpers `merge` uses.

`Edits` collects cuts, insertions and replacements against the original bytes
and applies them in one pass, so every byte no edit touches stays where it was
(see `merge` for why we splice rather than re-serialize). The helpers find
properties, arrays and struct fields in `rdf`'s span-keeping tree, and
serialize the small pieces (rdf:li items, arrays) we insert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from photovault.sidecar.rdf import RDF, Element, escape, leading_space, ns_decls


class MergeRefused(Exception):
    """The sidecar cannot be merged safely; it must be left untouched."""


@dataclass
class Edits:
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


def indent_before(data: bytes, el: Element) -> str:
    """The whitespace before `el`, reused for new siblings so files stay tidy."""
    ws = data[leading_space(data, el.start) : el.start].decode("utf-8", "replace")
    return ws if ws else " "


def _qn(el: Element) -> str:
    return f"{el.prefix}:{el.local}" if el.prefix else el.local


# ----------------------------------------------------------------- locating
def find_property(descs: list[Element], ns: str, local: str) -> tuple[Element | None, bool]:
    """(element, False) when found as element, (desc, True) when an attribute."""
    for desc in descs:
        for child in desc.children:
            if child.is_(ns, local):
                return child, False
        if (ns, local) in desc.attrs:
            return desc, True
    return None, False


def array_of(prop: Element) -> Element | None:
    for child in prop.children:
        if child.ns == RDF and child.local in ("Bag", "Seq", "Alt"):
            return child
    return None


def struct_container(prop: Element) -> Element | None:
    """Where the fields of a struct property live as child elements."""
    if prop.rdf_attr("parseType") == "Resource" and not prop.empty:
        return prop
    for child in prop.children:
        if child.is_(RDF, "Description") and not child.empty:
            return child
    return None


def struct_field(container: Element, ns: str, local: str) -> Element | None:
    for child in container.children:
        if child.is_(ns, local):
            return child
    return None


def list_items(array: Element) -> list[Element]:
    return [c for c in array.children if c.is_(RDF, "li")]


def append_items(ed: Edits, array: Element, items: list[str]) -> None:
    """Insert serialized rdf:li items at the end of an existing array element."""
    if not items:
        return
    lis = list_items(array)
    if array.empty:
        indent = indent_before(ed.data, array)
        body = "".join(f"{indent} {item}" for item in items)
        qn = _qn(array)
        decl = ns_decls(array.scope, {array.prefix: RDF}) if array.prefix else ""
        ed.replace(array.start, array.end, f"<{qn}{decl}>{body}{indent}</{qn}>")
        return
    if lis:
        indent = indent_before(ed.data, lis[-1])
        ed.put(lis[-1].end, "".join(f"{indent}{item}" for item in items))
    else:
        indent = indent_before(ed.data, array) + " "
        ed.put(array.content_start, "".join(f"{indent}{item}" for item in items))


def cut_property(ed: Edits, descs: list[Element], prop: Element) -> None:
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


def cut_elements(ed: Edits, descs: list[Element], cuts: list[Element]) -> None:
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


# ----------------------------------------------------------------- serializing
def li_text(text: str) -> str:
    return f"<rdf:li>{escape(text)}</rdf:li>"


def array_xml(qn: str, kind: str, items: list[str], indent: str) -> str:
    inner = "".join(f"{indent}  {item}" for item in items)
    return f"{indent}<{qn}>{indent} <rdf:{kind}>{inner}{indent} </rdf:{kind}>{indent}</{qn}>"
