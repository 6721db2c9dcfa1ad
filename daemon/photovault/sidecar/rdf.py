"""A small XMP/RDF reader that remembers where every element sits in the file.

Two jobs need it. The writer edits sidecars by splicing bytes: it removes only the
elements we wrote before and inserts new ones, so every byte of foreign data stays
where it was (see `writer`). The reader and the writer's self-check need the XMP
data model (properties, structs, arrays with their kind, language qualifiers)
independent of how a program happened to serialize it (attributes, nested
``rdf:Description``, ``rdf:parseType="Resource"``).

Only the standard library's expat is used. DOCTYPE and entity declarations are
refused: XMP never has them, and refusing them rules out entity expansion attacks.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML = "http://www.w3.org/XML/1998/namespace"
XMLNS = "http://www.w3.org/2000/xmlns/"

_SEP = "\x01"
_START_TAG = re.compile(
    rb"<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>", re.DOTALL
)
_ATTR = re.compile(rb"\s+([^\s=/>]+)\s*=\s*(?:\"[^\"]*\"|'[^']*')", re.DOTALL)


class XmpSyntaxError(Exception):
    """The bytes are not well-formed XMP; `str()` says where and why."""


@dataclass(eq=False)
class Element:
    """One XML element with its byte span in the parsed document.

    `start` is the offset of ``<``, `content_start` the offset after the start
    tag's ``>``, `content_end` the offset of the end tag's ``</`` (== content_start
    for an empty-element tag) and `end` the offset after the whole element.
    `attr_spans` maps an attribute's (namespace, local) name to the byte span of
    `` name="value"`` including its leading whitespace, so it can be cut out.
    `scope` maps prefixes to namespace URIs in force inside the element.
    """

    ns: str
    local: str
    prefix: str
    attrs: dict[tuple[str, str], str]
    scope: dict[str, str]
    start: int
    content_start: int = 0
    content_end: int = 0
    end: int = 0
    empty: bool = False
    children: list[Element] = field(default_factory=list)
    text: str = ""
    attr_spans: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def is_(self, ns: str, local: str) -> bool:
        return self.ns == ns and self.local == local

    def rdf_attr(self, local: str) -> str | None:
        return self.attrs.get((RDF, local))


def _split(name: str) -> tuple[str, str, str]:
    parts = name.split(_SEP)
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    return parts[0], parts[1], parts[2]


def parse_xml(data: bytes) -> Element:
    """Parse bytes into an `Element` tree with byte spans; raises `XmpSyntaxError`."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=_SEP)
    parser.namespace_prefixes = True
    parser.ordered_attributes = True
    stack: list[Element] = []
    root: list[Element] = []
    pending_ns: dict[str, str] = {}

    def refuse(*_args: object) -> None:
        raise XmpSyntaxError("DOCTYPE or entity declarations are not allowed in XMP")

    def start_ns(prefix: str | None, uri: str | None) -> None:
        pending_ns[prefix or ""] = uri or ""

    def start(name: str, attr_list: list[str]) -> None:
        pos = parser.CurrentByteIndex
        ns, local, prefix = _split(name)
        attrs = {}
        for i in range(0, len(attr_list), 2):
            ans, alocal, _ = _split(attr_list[i])
            attrs[(ans, alocal)] = attr_list[i + 1]
        parent_scope = stack[-1].scope if stack else {"xml": XML}
        scope = {**parent_scope, **pending_ns} if pending_ns else parent_scope
        pending_ns.clear()
        el = Element(ns, local, prefix, attrs, scope, pos)
        m = _START_TAG.match(data, pos)
        if m is None:
            raise XmpSyntaxError(f"cannot delimit the start tag at byte {pos}")
        el.content_start = m.end()
        el.empty = m.group(1) == b"/"
        for am in _ATTR.finditer(data, pos, m.end()):
            qname = am.group(1).decode("utf-8", "replace")
            if qname == "xmlns" or qname.startswith("xmlns:"):
                continue
            apfx, _, alocal = qname.rpartition(":")
            ans = scope.get(apfx, "") if apfx else ""
            el.attr_spans[(ans, alocal)] = (am.start(), am.end())
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(_name: str) -> None:
        el = stack.pop()
        if el.empty:
            el.content_end = el.content_start
            el.end = el.content_start
        else:
            pos = parser.CurrentByteIndex
            el.content_end = pos
            close = data.find(b">", pos)
            el.end = close + 1

    def text(chars: str) -> None:
        if stack:
            stack[-1].text += chars

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartNamespaceDeclHandler = start_ns
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as err:
        raise XmpSyntaxError(f"malformed XML: {err}") from err
    except RecursionError as err:  # pragma: no cover - expat nests iteratively
        raise XmpSyntaxError("XML nested too deeply") from err
    if not root:
        raise XmpSyntaxError("no XML element")
    return root[0]


def find_rdf(root: Element) -> Element:
    """The rdf:RDF element (the root, or a child of x:xmpmeta / x:xapmeta)."""
    if root.is_(RDF, "RDF"):
        return root
    for child in root.children:
        if child.is_(RDF, "RDF"):
            return child
    raise XmpSyntaxError("no rdf:RDF element")


def descriptions(rdf: Element) -> list[Element]:
    """The top-level rdf:Description elements that hold the properties."""
    return [c for c in rdf.children if c.is_(RDF, "Description")]


# ----------------------------------------------------------------- data model
# A value is one of:
#   Lit(text, lang)               simple value (lang: xml:lang qualifier or "")
#   Struct(((name, value), ...))  fields sorted by expanded name "ns" + "local"
#   Arr(kind, (value, ...))       kind "Bag", "Seq" or "Alt"
# Plain frozen dataclasses, so two values compare equal exactly when a reader
# would see the same data.


@dataclass(frozen=True)
class Lit:
    text: str
    lang: str = ""


@dataclass(frozen=True)
class Struct:
    fields: tuple[tuple[str, object], ...]

    def get(self, name: str) -> object | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Arr:
    kind: str
    items: tuple[object, ...]


_SKIP_ATTR_NS = (RDF, XML, XMLNS)


def qname(ns: str, local: str) -> str:
    """The expanded name used as key: namespace URI + local name."""
    return ns + local


def _fields(el: Element) -> dict[str, object]:
    """Properties of a description-like node: its plain attributes and children."""
    out: dict[str, object] = {}
    for (ns, local), value in el.attrs.items():
        if ns in _SKIP_ATTR_NS or not ns:
            continue
        out[qname(ns, local)] = Lit(value)
    for child in el.children:
        out[qname(child.ns, child.local)] = value_of(child)
    return out


def _struct(el: Element) -> Struct:
    return Struct(tuple(sorted(_fields(el).items())))


def value_of(prop: Element) -> object:
    """The XMP value of a property element (or of an rdf:li item)."""
    if prop.rdf_attr("parseType") == "Resource":
        return _struct(prop)
    if prop.rdf_attr("resource") is not None:
        return Lit(prop.rdf_attr("resource") or "")
    for child in prop.children:
        if child.ns == RDF and child.local in ("Bag", "Seq", "Alt"):
            items = tuple(value_of(li) for li in child.children if li.is_(RDF, "li"))
            return Arr(child.local, items)
        if child.is_(RDF, "Description"):
            return _struct(child)
    if prop.children:  # struct written without parseType (not strict RDF, seen in the wild)
        return _struct(prop)
    plain = {k for k in prop.attrs if k[0] not in _SKIP_ATTR_NS and k[0]}
    if plain:
        return _struct(prop)
    return Lit(prop.text, prop.attrs.get((XML, "lang"), ""))


def properties(rdf: Element) -> dict[str, object]:
    """All top-level properties of the packet, keyed by expanded name."""
    out: dict[str, object] = {}
    for desc in descriptions(rdf):
        out.update(_fields(desc))
    return out


# ----------------------------------------------------------------- writing
def escape(text: str) -> str:
    """Escape text for element content or a double-quoted attribute."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#xD;")
    )


def ns_decls(scope: dict[str, str], wanted: dict[str, str]) -> str:
    """``xmlns:`` attributes for the prefixes in `wanted` not already bound so."""
    return "".join(
        f' xmlns:{prefix}="{escape(uri)}"'
        for prefix, uri in wanted.items()
        if scope.get(prefix) != uri
    )


def leading_space(data: bytes, pos: int) -> int:
    """Start of the run of whitespace that ends at `pos` (for clean removals)."""
    start = pos
    while start > 0 and data[start - 1 : start] in (b" ", b"\t", b"\n", b"\r"):
        start -= 1
    return start
