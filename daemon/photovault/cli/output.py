"""vaultctl's human output: status, search results, `show`, people and places.

Pure functions from vaultd's answers to lines of text; nothing here talks to
the daemon or prints, except `print_results`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from photovault.results import Place

# Paths are bytes and need not be UTF-8. vaultd sends such a path as a str with
# the bad bytes as lone surrogates (query.handlers.path_fields), as Python reads
# them from argv, so a printed path can be passed back and names the same file.
# Human output writes those bytes as they are (`vaultctl.main` sets stdout's errors to
# surrogateescape); JSON output writes them as \udcXX escapes, which keeps it
# valid UTF-8 and which Python's json reads back exactly ("path_bytes" carries
# the bytes, in base64, for other readers).
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def dump_json(value: Any, indent: int | None = 2) -> str:
    """JSON as vaultctl prints it: UTF-8, lone surrogates as \\udcXX escapes."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _bar(done: int, total: int, width: int = 30) -> str:
    frac = done / total if total else 1.0
    fill = round(frac * width)
    return "[" + "#" * fill + "." * (width - fill) + f"] {frac * 100:5.1f}%"


def _eta(remaining: int, rate: float) -> str:
    if remaining <= 0:
        return "done"
    if rate <= 0:
        return "ETA --"
    secs = int(remaining / rate)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"ETA {h}h{m:02d}m" if h else f"ETA {m}m{s:02d}s"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "never"


def format_problems(problems: list[dict[str, Any]]) -> list[str]:
    """Current faults, first in `status`: what is wrong, where, and since when."""
    if not problems:
        return []
    lines = [f"PROBLEMS ({len(problems)}):"]
    for p in problems:
        where = f" [{p['path']}]" if p.get("path") else ""
        lines.append(f"  {p['kind']}: {p['message']}{where} (since {_when(p.get('since'))})")
    return lines


def format_status(st: dict[str, Any]) -> str:
    lines = format_problems(st.get("problems") or [])
    state = "paused" if st["paused"] else ("quiet hours" if st["quiet_hours_active"] else "running")
    limit = st.get("rate_limit")
    lines.append(
        f"vaultd {st['version']} (pid {st['pid']}): {state}; queue {st['queue_depth']}, "
        f"settling {st.get('settling', 0)}, {st['rate_per_second']:.1f} img/s"
        + (f" (limit {limit:g}/s)" if limit else "")
    )
    rate = st["rate_per_second"]
    for sh in st["shares"]:
        c = sh["counts"]
        finished = c["done"] + c["failed"] + c["quarantined"]
        total = sh["total"]
        lines.append(
            f"  {sh['name']:<14} {_bar(finished, total)} {finished}/{total}  "
            f"{_eta(c['pending'] + c['processing'], rate)}  watch={sh['watch']}"
            + ("  scanning" if sh.get("scanning") else "")
        )
        lines.append(
            f"  {'':<14} pending {c['pending']}, processing {c['processing']}, done {c['done']}, "
            f"failed {c['failed']}, quarantined {c['quarantined']}; last scan "
            f"{_when(sh.get('last_scan'))}"
        )
        if sh.get("watch_problem"):
            lines.append(f"  {'':<14} warning: {sh['watch_problem']}")
    mi = st.get("memory_index")
    if mi and mi.get("state") != "off":
        detail = (
            f"{mi['vectors']} vectors in {mi['cells']} cells, {mi['memory_mib']:.0f} MiB"
            if mi["state"] == "ready"
            else (mi.get("reason") or "")
        )
        lines.append(f"memory index: {mi['state']}" + (f" ({detail})" if detail else ""))
    pe = st.get("people")
    if pe:
        lines.append(
            f"people: {pe['people']} people from {pe['faces']} faces "
            f"({pe['waiting']} waiting, {pe.get('unassigned', 0)} nobody's); "
            f"clustering {pe.get('clustering', 'idle')}"
        )
    an = st.get("analyzers") or {}
    if an:
        active = ", ".join(a["name"] for a in an.get("active", [])) or "none"
        lines.append(f"analyzers: {active}")
        for d in an.get("disabled", []):
            lines.append(f"  disabled {d['name']}: {d['reason']}")
    if st["quarantined"]:
        lines.append(f"quarantined ({len(st['quarantined'])}):")
        for q in st["quarantined"][:20]:
            lines.append(f"  {q['path']}: {q['reason']}")
    warnings = st.get("sidecar_warnings") or []
    if warnings:
        lines.append(f"sidecars left untouched or with warnings ({len(warnings)}):")
        for w in warnings[:20]:
            lines.append(f"  {w['path']}: {w['warning']}")
    return "\n".join(lines)


#: Recognized lines `show` prints (all of them are in --json).
SHOW_TEXT_LINES = 5


def place_label(place: dict[str, Any] | None) -> str:
    """ "Lisbon, Portugal"; "" for no place."""
    p = Place.from_dict(place)
    return p.label() if p is not None else ""


def format_show(result: dict[str, Any]) -> list[str]:
    """`show` for people: a line per key; the place by name, the local time
    with where its offset came from, the first recognized lines."""
    width = max(len(k) for k in result)
    lines = []
    for key, value in result.items():
        if key == "path_bytes":
            continue  # "path" itself is printed as its bytes
        if key == "place":
            value = place_label(value)
        elif key == "duration" and isinstance(value, int | float):
            value = f"{clock(value)} ({value:g} s)"
        elif key == "local_time" and isinstance(value, dict):
            where = ", ".join(v for v in (value.get("zone"), value.get("source")) if v)
            value = (value.get("offset") or "no offset") + (f" ({where})" if where else "")
        elif key == "text" and isinstance(value, list):
            lines.append(f"{key:<{width}}  {len(value)} line{'s' if len(value) != 1 else ''}")
            for item in value[:SHOW_TEXT_LINES]:
                lines.append(f"{'':<{width}}    {item.get('text', '')}")
            if len(value) > SHOW_TEXT_LINES:
                lines.append(f"{'':<{width}}    ... ({len(value) - SHOW_TEXT_LINES} more)")
            continue
        elif isinstance(value, (dict, list)):
            value = dump_json(value, indent=None)
        lines.append(f"{key:<{width}}  {'' if value is None else value}".rstrip())
    return lines


def clock(seconds: float) -> str:
    """A time into a video as a player shows it: "0:05", "12:34", "1:02:03"
    (whole seconds, rounded down: the moment is within that second)."""
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def hit_label(result: dict[str, Any]) -> str:
    """A hit's path, and for a moment in a video its time: "clip.mp4 @ 0:05"."""
    at = result.get("at")
    return result["path"] + (f" @ {clock(at)}" if isinstance(at, int | float) else "")


def _short_date(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def format_results(results: list[dict[str, Any]]) -> list[str]:
    """An aligned table: score, path (with the moment of a video hit), date,
    place (when any hit has one), tags, people; under a hit, the recognized line
    that matched the text."""
    places = any(r.get("place") for r in results)
    rows = [
        (
            f"{r['score']:.3f}",
            hit_label(r),
            _short_date(r.get("taken_at")),
            *([place_label(r.get("place"))[:30]] if places else []),
            ", ".join(t.rsplit("|", 1)[-1] for t in r.get("tags", []))[:40],
            ", ".join(r.get("people", []))[:30],
        )
        for r in results
    ]
    head = ("score", "path", "date", *(["place"] if places else []), "tags", "people")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    for r, row in zip(results, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if r.get("text_match"):
            lines.append(f"{'':<{widths[0]}}  \u201c{r['text_match']}\u201d")
    return lines


def print_results(results: list[dict[str, Any]]) -> None:
    for line in format_results(results):
        print(line)


def format_places(places: list[dict[str, Any]]) -> list[str]:
    """Countries, their regions, their towns, each with its photo count."""
    lines = []
    for c in places:
        lines.append(f"{c['country']} ({c['country_code']})  {c['photos']}")
        for r in c["regions"]:
            lines.append(f"  {r['region'] or '(no region)'}  {r['photos']}")
            for t in r["cities"]:
                lines.append(f"    {t['city'] or '(no town)'}  {t['photos']}")
    return lines


def format_people(people: list[dict[str, Any]]) -> list[str]:
    """`people list`: a line per person with their faces and photos."""
    return [
        f"{p['id']:>5}  {p['name'] or '(unnamed)':<24} {p['faces']:>5} faces  "
        f"{len(p['photos']):>5} photos"
        for p in people
    ]


def format_person(person: dict[str, Any]) -> list[str]:
    """`people show`: the person, then a line per face."""
    lines = [f"person {person['id']}: {person['name'] or '(unnamed)'}, {person['faces']} faces"]
    for f in person["faces"]:
        lines.append(f"  face {f['id']:>6}  {f['path']}  ({f['assigned_by']})")
    return lines


def format_suggestions(found: list[dict[str, Any]]) -> list[str]:
    """`people suggest`: each pair that look alike, with the command that merges them."""
    lines = []
    for s in found:
        a, b = s["a"], s["b"]
        lines.append(
            f"{a['id']:>5} {a['name'] or '(unnamed)'} ({a['faces']} faces) and "
            f"{b['id']} {b['name'] or '(unnamed)'} ({b['faces']} faces): distance "
            f"{s['distance']:.2f}; same person? vaultctl people merge {a['id']} {b['id']}"
        )
    return lines
