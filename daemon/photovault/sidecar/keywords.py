"""The tags of a photo as the person sees them: the one place that decides it.

A person's sidecar edits are decisions. A keyword of ours they removed (the
catalog's `rejected_keywords`) is left out, and a keyword they added (the
`keywords` of the catalog's sidecar import) is one of the photo's tags, with
source "person". `vaultctl show` and the search index both read tags through
`person_tags`, so what a person decided holds everywhere they look.

Keywords are hierarchical paths written "A|B"; empty parts are ignored, as the
sidecar writer ignores them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

#: The `source` of a tag a person added in the sidecar.
PERSON = "person"


def keyword_path(tag: str) -> str:
    """A keyword in the form sidecars and the catalog use ("A|B", no empty parts)."""
    return "|".join(p for p in str(tag).split("|") if p)


def person_tags(
    tags: Iterable[dict[str, Any]], rejected: Collection[str], added: Iterable[str]
) -> list[dict[str, Any]]:
    """The analyzer `tags` ({"tag", "confidence", "source"}) without those a
    person removed (`rejected`, "A|B"), followed by the keywords they `added`
    ("A|B") that are not already among them, as {"tag", "confidence": None,
    "source": "person"}. A keyword in both was put back by the person: it stays."""
    removed = {keyword_path(k) for k in rejected}
    out = [t for t in tags if keyword_path(t.get("tag") or "") not in removed]
    seen = {keyword_path(t.get("tag") or "") for t in out}
    for keyword in added:
        path = keyword_path(keyword)
        if path and path not in seen:
            seen.add(path)
            out.append({"tag": path, "confidence": None, "source": PERSON})
    return out
