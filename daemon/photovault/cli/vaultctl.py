"""`vaultctl`: the command-line client of vaultd.

The socket comes from `--socket`, else $VAULT_SOCKET, else the `[server]
socket` of the config (`--config`, else $VAULT_CONFIG, else the default).
Exit codes: 0 success, 1 nothing found, 2 error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from photovault import DEFAULT_CONFIG_PATH
from photovault.query.client import Client, ClientError
from photovault.results import Place

EXIT_OK, EXIT_NONE, EXIT_ERROR = 0, 1, 2

# Paths are bytes and need not be UTF-8. vaultd sends such a path as a str with
# the bad bytes as lone surrogates (query.handlers.path_fields), as Python reads
# them from argv, so a printed path can be passed back and names the same file.
# Human output writes those bytes as they are (`main` sets stdout's errors to
# surrogateescape); JSON output writes them as \udcXX escapes, which keeps it
# valid UTF-8 and which Python's json reads back exactly ("path_bytes" carries
# the bytes, in base64, for other readers).
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def dump_json(value: Any, indent: int | None = 2) -> str:
    """JSON as vaultctl prints it: UTF-8, lone surrogates as \\udcXX escapes."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    if os.environ.get("VAULT_SOCKET"):
        return Path(os.environ["VAULT_SOCKET"])
    return _settings(args).server.socket


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


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    while True:
        st = client.call("status")
        # Exit 1 while anything is wrong, so scripts and monitoring notice.
        code = EXIT_NONE if st.get("problems") else EXIT_OK
        if args.json:
            print(json.dumps(st, indent=2))
            return code
        text = format_status(st)
        if not args.watch:
            print(text)
            return code
        sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        sys.stdout.flush()
        time.sleep(args.interval)


def cmd_simple(op: str) -> Any:
    def run(client: Client, args: argparse.Namespace) -> int:
        extra: dict[str, Any] = {"share": args.share} if getattr(args, "share", None) else {}
        if getattr(args, "forget_missing", False):
            extra["forget_missing"] = True
        result = client.call(op, **extra)
        if op == "rescan":
            state = "scanned" if result.get("finished") else "scanning (in the background)"
            print(f"{state}: " + ", ".join(result["scanning"]))
        else:
            print("paused" if result.get("paused") else "running")
        return EXIT_OK

    return run


def cmd_check(client: Client, args: argparse.Namespace) -> int:
    """Exit 0 when catalog, index and sidecars agree, else 1 with what does not."""
    client.timeout = max(client.timeout, 900.0)  # a million photos take a while
    r = client.call("check")
    if args.json:
        print(json.dumps(r, indent=2, ensure_ascii=False))
        return EXIT_OK if r["agree"] else EXIT_NONE
    n = r["counts"]
    labels = {
        "index_missing": "done in the catalog, missing from the search index",
        "index_stale": "stale in the search index (other content or path)",
        "index_extra": "in the search index, unknown to the catalog",
        "sidecars": "sidecar not written or not writable",
    }
    if r["agree"]:
        print("catalog, search index and sidecars agree")
        return EXIT_OK
    for key, label in labels.items():
        if not n.get(key):
            continue
        print(f"{n[key]} {label}:")
        for item in r[key][:50]:
            where = f"{item.get('share', '')}/{item.get('path', '')}" if item.get("path") else ""
            extra = f": {item['problem']}" if item.get("problem") else ""
            print(f"  {where or 'id ' + str(item.get('id'))}{extra}")
    return EXIT_NONE


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


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    path = os.path.abspath(args.path)
    result = client.call("show", path=path)
    if args.json:
        print(dump_json(result))
        return EXIT_OK
    for line in format_show(result):
        print(line)
    return EXIT_OK


def cmd_sidecar(client: Client, args: argparse.Namespace) -> int:
    result = client.call("sidecar", path=os.path.abspath(args.path))
    if args.json:
        print(dump_json(result))
        return EXIT_OK
    print(
        f"sidecar: {result['sidecar']} ({'exists' if result['exists'] else 'not written'}, "
        f"{result['state']})"
    )
    if result.get("warning"):
        print(f"warning: {result['warning']}")
    if result.get("problem"):
        print(f"problem: {result['problem']}")
    for kw in result["keywords"]:
        print(f"  keyword  {kw}")
    for face in result["faces"]:
        box = ", ".join(f"{v:.3f}" for v in face["box"] or [])
        print(f"  face     {face['name'] or '(unnamed)'}  [{box}]  {face['face_id']}")
    if result.get("other_keywords"):
        print(f"  (not ours, left as they are: {', '.join(result['other_keywords'])})")
    return EXIT_OK


def cmd_sidecars(client: Client, args: argparse.Namespace) -> int:
    extra = {"share": args.share} if args.share else {}
    if args.action == "rewrite":
        r = client.call("sidecars_rewrite", **extra)
        print(f"rewriting sidecars of {r['queued']} photos")
    else:
        r = client.call("sidecars_import", **extra)
        print(f"imported {r['imported']} sidecars")
    return EXIT_OK


def render_sheet(faces: list[dict[str, Any]], out: str, columns: int | None = None) -> int:
    """Contact sheet of face crops, rendered here from photos this user can read."""
    from photovault.media.decode import decode_image
    from photovault.media.types import MediaError
    from photovault.people.sheet import crop_face, render_face_sheet

    crops, labels = [], []
    cache: dict[str, Any] = {}
    for f in faces[:120]:
        path = f.get("path")
        if not path:
            continue
        if path not in cache:
            try:
                cache[path] = decode_image(Path(path), 1024).pixels
            except (MediaError, OSError) as exc:
                print(f"vaultctl: skipped {path}: {exc}", file=sys.stderr)
                cache[path] = None
        if cache[path] is not None:
            crops.append(crop_face(cache[path], f["box"]))
            labels.append(f.get("label") or f"face {f['id']}")
    render_face_sheet(crops, out, labels=labels, columns=columns)
    return len(crops)


def render_contact_sheet(results: list[dict[str, Any]], out: str) -> int:
    """Thumbnails of results with their rank and file name, for people who would
    rather look than read. Rendered here, from files this user can read."""
    from photovault.media.decode import decode_image
    from photovault.media.types import MediaError
    from photovault.people.sheet import render_face_sheet

    thumbs, labels = [], []
    for rank, r in enumerate(results, 1):
        try:
            thumbs.append(decode_image(Path(r["path"]), 256).pixels)
        except (MediaError, OSError) as exc:
            print(f"vaultctl: skipped {r['path']}: {exc}", file=sys.stderr)
            continue
        name = os.fsencode(Path(r["path"]).name).decode("utf-8", "replace")  # drawable
        labels.append(f"{rank}. {name}")
    render_face_sheet(thumbs, out, tile=200, labels=labels)
    return len(thumbs)


def _short_date(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def format_results(results: list[dict[str, Any]]) -> list[str]:
    """An aligned table: score, path, date, place (when any hit has one), tags,
    people; under a hit, the recognized line that matched the text."""
    places = any(r.get("place") for r in results)
    rows = [
        (
            f"{r['score']:.3f}",
            r["path"],
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


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if args.person:
        f["persons"] = args.person
    if args.tag:
        f["tags"] = args.tag
    for key in ("after", "before", "camera", "place", "path"):
        if getattr(args, key):
            f[key] = getattr(args, key)
    if args.near:
        f["near"] = parse_near(args.near)
    return f


def parse_near(text: str) -> dict[str, Any]:
    """--near: "LAT,LON[,KM]" (KM defaults to 5) or "PLACE[,KM]": vaultd finds
    the place by name (a town, region or country) and picks the radius when
    none is given."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) in (2, 3):
        return {"lat": numbers[0], "lon": numbers[1], "km": numbers[2] if numbers[2:] else 5.0}
    km: float | None = None
    if not numbers and len(parts) > 1:
        try:
            km = float(parts[-1])
            parts = parts[:-1]
        except ValueError:
            pass  # "Paris, Texas": the comma belongs to the name
    name = ", ".join(p for p in parts if p)
    if numbers or not name:
        raise ClientError("bad_request", f"--near expects LAT,LON[,KM] or PLACE[,KM], got {text!r}")
    return {"name": name} if km is None else {"name": name, "km": km}


def _show_results(result: dict[str, Any], args: argparse.Namespace) -> int:
    results = result["results"]
    if args.sheet:
        n = render_contact_sheet(results, args.sheet)
        print(f"wrote {args.sheet} ({n} photos)", file=sys.stderr)
    if args.json:
        print(dump_json(results))
    elif results:
        print_results(results)
    else:
        print("no photos found", file=sys.stderr)
    return EXIT_OK if results else EXIT_NONE


def cmd_search(client: Client, args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    filters = _filters(args)
    if not text and not filters:
        raise ClientError("bad_request", "give a search text, a filter, or both")
    result = client.call("search", text=text, filters=filters, limit=args.limit)
    near = result.get("near")
    if near and not args.json:
        print(
            f"near {place_label(near.get('place'))} ({near['lat']:.4f}, {near['lon']:.4f}), "
            f"within {near['km']:g} km",
            file=sys.stderr,
        )
    return _show_results(result, args)


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


def cmd_places(client: Client, args: argparse.Namespace) -> int:
    places = client.call("places")["places"]
    if args.json:
        print(dump_json(places))
    elif places:
        for line in format_places(places):
            print(line)
    else:
        print("no photos with a place", file=sys.stderr)
    return EXIT_OK if places else EXIT_NONE


def cmd_similar(client: Client, args: argparse.Namespace) -> int:
    result = client.call("similar", path=os.path.abspath(args.photo), limit=args.limit)
    return _show_results(result, args)


def cmd_embed(client: Client, args: argparse.Namespace) -> int:
    if args.kind == "text":
        result = client.call("embed", kind="text", text=args.value)
    else:
        result = client.call("embed", kind="image", path=os.path.abspath(args.value))
    if args.json:
        print(json.dumps(result))
    else:
        vec = result["vector"]
        print(
            f"{result['model']}: {len(vec)} dimensions, first: "
            + ", ".join(f"{v:.4f}" for v in vec[:4])
            + " ..."
        )
    return EXIT_OK


def cmd_people(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        people = client.call("people_list")
        if args.json:
            print(dump_json(people))
        else:
            for p in people:
                print(
                    f"{p['id']:>5}  {p['name'] or '(unnamed)':<24} {p['faces']:>5} faces  "
                    f"{len(p['photos']):>5} photos"
                )
            st = client.call("status").get("people") or {}
            if st.get("clustering", "idle") != "idle":
                print(
                    f"clustering {st['clustering']}: {st.get('waiting', 0)} faces not grouped "
                    "yet; this list is not complete"
                )
        return EXIT_OK if people else EXIT_NONE
    if args.action == "suggest":
        found = client.call("people_suggest")
        if args.sheet:
            faces = [
                {**f, "label": f"{f['person_id']}: face {f['id']}"}
                for s in found
                for f in s["faces"]
            ]
            n = render_sheet(faces, args.sheet, columns=6)
            print(f"wrote {args.sheet} ({n} faces, one row per suggestion)")
        if args.json:
            print(dump_json(found))
        else:
            for s in found:
                a, b = s["a"], s["b"]
                print(
                    f"{a['id']:>5} {a['name'] or '(unnamed)'} ({a['faces']} faces) and "
                    f"{b['id']} {b['name'] or '(unnamed)'} ({b['faces']} faces): distance "
                    f"{s['distance']:.2f}; same person? vaultctl people merge {a['id']} {b['id']}"
                )
        return EXIT_OK if found else EXIT_NONE
    if args.action == "show":
        person = client.call("people_show", id=args.id)
        if args.sheet:
            n = render_sheet(person["faces"], args.sheet)
            print(f"wrote {args.sheet} ({n} faces)")
        if args.json:
            print(dump_json(person))
        elif not args.sheet:
            print(
                f"person {person['id']}: {person['name'] or '(unnamed)'}, {person['faces']} faces"
            )
            for f in person["faces"]:
                print(f"  face {f['id']:>6}  {f['path']}  ({f['assigned_by']})")
        return EXIT_OK
    if args.action == "name":
        r = client.call("people_name", id=args.id, name=args.name)
    elif args.action == "rename":
        r = client.call("people_rename", old=args.old, new=args.new)
    elif args.action == "merge":
        r = client.call("people_merge", keep=args.keep, other=args.other)
    else:
        r = client.call("people_reject", face_id=args.face_id, person_id=args.person_id)
    print(json.dumps(r, ensure_ascii=False))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Copies for sharing, location removed (runs here, with this user's rights)."""
    from photovault.ops.export import ExportError, export_strip_location

    # FAILED lines and the export's warnings name files by their bytes too, as
    # stdout does (see main), not as "\udcXX" escapes nobody can paste back.
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    if not args.strip_location:
        print(
            "vaultctl: export needs --strip-location (the only export mode: sharing copies "
            "must not carry where you live)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    *sources, dest = args.paths
    if not sources:
        print("vaultctl: export needs at least one SRC and a DEST", file=sys.stderr)
        return EXIT_ERROR
    try:
        report = export_strip_location([Path(p) for p in sources], Path(dest))
    except ExportError as exc:
        print(f"vaultctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for f in report.copied:
            print(f"copied {f.source} -> {f.copy} (location removed)")
        for path, reason in report.skipped:
            print(f"skipped {path}: {reason}")
    for path, reason in report.failed:
        print(f"vaultctl: FAILED {path}: {reason}", file=sys.stderr)
    return EXIT_OK if not report.failed else EXIT_ERROR


def cmd_backup(client: Client, args: argparse.Namespace) -> int:
    r = client.call("backup", dest=os.path.abspath(args.dest), include_models=args.include_models)
    print(f"backup written to {r['path']}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore needs vaultd stopped: it swaps the state files under it."""
    from photovault.ops.restore import RestoreError, restore, socket_is_live

    settings = _settings(args)
    try:
        report = restore(
            Path(args.src),
            settings.state_dir,
            daemon_running=socket_is_live(settings.server.socket),
            force=args.force,
        )
    except RestoreError as exc:
        print(f"vaultctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"restored {', '.join(report.restored)} from {report.source}")
    if report.aside:
        print(f"the previous state was kept in {report.aside}")
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Any:
    """The configuration, loaded only when needed: pydantic costs vaultctl ~0.1 s
    (an error in it is reported like any other, naming the file and key)."""
    from photovault.config import ConfigError, load

    cfg = Path(args.config or os.environ.get("VAULT_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        return load(cfg, check_paths=False)
    except ConfigError as exc:
        raise ClientError("config", str(exc)) from exc


def cmd_models(args: argparse.Namespace) -> int:
    """Model store commands work on the config's state dir, daemon running or not."""
    from photovault.models.install import import_model, install
    from photovault.models.store import ModelError, list_models, remove

    if args.action == "list" and args.available:
        return _list_available(args.json)
    store = _settings(args).models_dir
    try:
        if args.action == "list":
            rows = list_models(store)
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(
                    "no models installed (try: vaultctl models install tagger efficientnet-lite0)"
                )
            else:
                for r in rows:
                    print(
                        f"{r['name']:<24} {r['task']:<8} {r['architecture']:<20} "
                        f"{','.join(r['variants']):<12} {r['bytes'] / 1e6:7.1f} MB  "
                        f"{r['licence']}"
                    )
            return EXIT_OK if rows or args.json else EXIT_NONE
        if args.action == "install" and args.from_hub:
            from photovault.models.hub import install_from_hub

            if args.kind != "clip":
                raise ModelError("--from-hub installs clip models (e.g. ViT-B-32__openai)")
            m = install_from_hub(
                store, args.name, args.replace, args.revision, store_as=args.opt_name
            )
            print(f"installed {m.name} ({m.task}, {m.extra.get('family')}) into {store}")
        elif args.action == "install":
            opts: dict[str, Any] = {"replace": args.replace}
            for key in ("pretrained", "variants", "name"):  # only when given: the tagger
                value = getattr(args, f"opt_{key}")  # refuses options it does not know
                if value:
                    opts[key] = value
            if args.export_env:
                opts["export_env"] = True
            m = install(store, args.kind, args.name, opts)
            print(f"installed {m.name} ({m.task}) into {store}")
        elif args.action == "import":
            from photovault.models.hub import import_hub_dir, is_hub_layout

            if args.kind == "clip" and is_hub_layout(Path(args.dir)):
                m = import_hub_dir(
                    store, Path(args.dir), args.store_name, args.replace, family=args.family
                )
            else:
                m = import_model(store, args.kind, Path(args.dir), replace=args.replace)
            print(f"imported {m.name} ({m.task}) into {store}")
        else:
            remove(store, args.name)
            print(f"removed {args.name}")
    except ModelError as exc:
        print(f"vaultctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _list_available(as_json: bool) -> int:
    """`models list --available`: the catalogue of ready-made hub models."""
    from photovault.models.hub import available

    rows = available()
    if as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(f"{'NAME':<30} {'FAMILY':<12} {'DOWNLOAD':>9} {'RAM':>9}  LANGUAGES / GOOD FOR")
    for r in rows:
        print(
            f"{r['name']:<30} {r['family']:<12} {r['download_mb']:>6} MB "
            f"{r['ram_mb']:>6} MB  {r['languages']}: {r['good_for']}"
        )
    print(
        "sizes and RAM are estimates (parameters x 4 bytes), not measured; the install "
        "prints the real size first. Install: vaultctl models install clip NAME --from-hub"
    )
    return EXIT_OK


def cmd_models_cleanup(args: argparse.Namespace) -> int:
    """`models cleanup`: remove the export environment (torch), no config needed."""
    from photovault.models.exportenv import cleanup, env_dir
    from photovault.models.store import ModelError

    env = env_dir()
    try:
        freed = cleanup(env)
    except (ModelError, OSError) as exc:
        print(f"vaultctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not freed:
        print(f"no export environment at {env}")
        return EXIT_OK
    print(f"removed the export environment {env}: {freed / 1e9:.2f} GB freed")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaultctl", description="Control and query vaultd")
    p.add_argument("--socket", help="vaultd's Unix socket (default: $VAULT_SOCKET or config)")
    p.add_argument(
        "--config", "-c", help=f"config file (default $VAULT_CONFIG or {DEFAULT_CONFIG_PATH})"
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("status", help="progress per share, queue, quarantined files")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="refresh until interrupted")
    s.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_status)

    sub.add_parser("pause", help="stop taking new work (within a second)").set_defaults(
        func=cmd_simple("pause")
    )
    sub.add_parser("resume", help="resume work").set_defaults(func=cmd_simple("resume"))
    r = sub.add_parser("rescan", help="reconcile a share (or all) with the disk now")
    r.add_argument("share", nargs="?")
    r.add_argument(
        "--forget-missing",
        action="store_true",
        help="the share's photos gone from disk were deleted on purpose: forget them"
        " even when they are most of the share (needs SHARE)",
    )
    r.set_defaults(func=cmd_simple("rescan"))

    ck = sub.add_parser(
        "check", help="do catalog, search index and sidecars agree? (exit 0 yes, 1 no)"
    )
    ck.add_argument("--json", action="store_true")
    ck.set_defaults(func=cmd_check)

    sh = sub.add_parser("show", help="what we know of one photo")
    sh.add_argument("path")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    sc = sub.add_parser("sidecar", help="what we wrote into a photo's XMP sidecar")
    sc.add_argument("path")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=cmd_sidecar)
    scs = sub.add_parser("sidecars", help="rewrite all sidecars, or import them into the catalog")
    scs.add_argument("action", choices=["rewrite", "import"])
    scs.add_argument("share", nargs="?")
    scs.set_defaults(func=cmd_sidecars)

    se = sub.add_parser("search", help="find photos by meaning, keywords, people, dates, places")
    se.add_argument("text", nargs="*", help="what to look for (may be empty with filters)")
    se.add_argument("--person", action="append", metavar="NAME", help="repeatable; all must appear")
    se.add_argument(
        "--tag", action="append", metavar="TAG", help="repeatable: 'dog', 'Animals|Dog'"
    )
    se.add_argument("--after", metavar="DATE", help="taken on or after (YYYY-MM-DD[THH:MM])")
    se.add_argument("--before", metavar="DATE", help="taken before")
    se.add_argument(
        "--near",
        metavar="LAT,LON[,KM]|PLACE[,KM]",
        help="within KM (default 5) of a position or of a place by name",
    )
    se.add_argument(
        "--place",
        metavar="NAME",
        help="taken in this town, region or country (name or code; accents, case ignored)",
    )
    se.add_argument("--camera", metavar="TEXT", help="camera make/model contains TEXT")
    se.add_argument("--path", metavar="GLOB", help="share-relative (or absolute) path glob")
    se.add_argument("--limit", type=int, default=20)
    se.add_argument("--json", action="store_true")
    se.add_argument("--sheet", metavar="FILE.jpg", help="also render a contact sheet")
    se.set_defaults(func=cmd_search)
    pl_ = sub.add_parser("places", help="where the photos were taken: country, region, town")
    pl_.add_argument("--json", action="store_true")
    pl_.set_defaults(func=cmd_places)
    si = sub.add_parser("similar", help="photos that look like PHOTO, near-duplicates first")
    si.add_argument("photo")
    si.add_argument("--limit", type=int, default=20)
    si.add_argument("--json", action="store_true")
    si.add_argument("--sheet", metavar="FILE.jpg")
    si.set_defaults(func=cmd_similar)
    em = sub.add_parser("embed", help="the CLIP vector of an image or a text")
    em.add_argument("kind", choices=["image", "text"])
    em.add_argument("value", help="image path or text")
    em.add_argument("--json", action="store_true")
    em.set_defaults(func=cmd_embed)

    pp = sub.add_parser("people", help="list, check, name, merge and correct people")
    psub = pp.add_subparsers(dest="action", required=True)
    pl = psub.add_parser("list")
    pl.add_argument("--json", action="store_true")
    ps = psub.add_parser("show", help="a person's faces; --sheet renders a contact sheet")
    ps.add_argument("id", type=int)
    ps.add_argument("--sheet", metavar="FILE.jpg")
    ps.add_argument("--json", action="store_true")
    pn = psub.add_parser("name", help="name a person (written into every sidecar)")
    pn.add_argument("id", type=int)
    pn.add_argument("name")
    pr = psub.add_parser("rename")
    pr.add_argument("old")
    pr.add_argument("new")
    pm = psub.add_parser("merge", help="move B's faces into A")
    pm.add_argument("keep", type=int, metavar="A")
    pm.add_argument("other", type=int, metavar="B")
    pj = psub.add_parser("reject", help="this face is not that person (remembered)")
    pj.add_argument("face_id", type=int, metavar="FACE_ID")
    pj.add_argument("person_id", type=int, metavar="PERSON_ID")
    pg = psub.add_parser(
        "suggest", help="people who look alike (likely the same person); merges are yours"
    )
    pg.add_argument("--sheet", metavar="FILE.jpg", help="their faces side by side, a row each")
    pg.add_argument("--json", action="store_true")
    pp.set_defaults(func=cmd_people)

    ex = sub.add_parser("export", help="copy photos for sharing, GPS and places removed")
    ex.add_argument(
        "--strip-location",
        action="store_true",
        required=True,
        help="required: the only export mode (copies never carry where you live)",
    )
    ex.add_argument("paths", nargs="+", metavar="SRC... DEST")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(local=cmd_export)
    bk = sub.add_parser("backup", help="snapshot catalog, index, people, model manifests")
    bk.add_argument("dest")
    bk.add_argument("--include-models", action="store_true", help="also the ONNX files")
    bk.set_defaults(func=cmd_backup)
    rs = sub.add_parser("restore", help="restore a snapshot (vaultd must be stopped)")
    rs.add_argument("src")
    rs.add_argument("--force", action="store_true", help="accept a newer schema version")
    rs.set_defaults(local=cmd_restore)

    m = sub.add_parser("models", help="list, install, import or remove models (no daemon needed)")
    msub = m.add_subparsers(dest="action", required=True)
    ml = msub.add_parser("list")
    ml.add_argument("--json", action="store_true")
    ml.add_argument(
        "--available", action="store_true", help="ready-made models on the hub (--from-hub)"
    )
    mi = msub.add_parser("install", help="e.g. `models install tagger efficientnet-lite0`")
    mi.add_argument("kind", choices=["tagger", "clip", "text"])
    mi.add_argument("name")
    mi.add_argument("--replace", action="store_true")
    mi.add_argument(
        "--pretrained",
        dest="opt_pretrained",
        metavar="TAG|FILE",
        help="clip: open_clip pretrained tag (downloads) or a local checkpoint file",
    )
    mi.add_argument(
        "--variants",
        dest="opt_variants",
        metavar="fp32,int8,fp16",
        help="clip: variants to export (default fp32,int8; fp16 on GPU boxes)",
    )
    mi.add_argument(
        "--store-name",
        dest="opt_name",
        metavar="NAME",
        help="clip: name in the model store (default: architecture + weights)",
    )
    mi.add_argument(
        "--from-hub",
        action="store_true",
        help="clip: download a ready ONNX export (Immich's layout, e.g. ViT-B-32__openai or "
        "OWNER/REPO) through huggingface_hub; no torch; HF_HUB_OFFLINE=1: cache only",
    )
    mi.add_argument("--revision", help="--from-hub: a branch, tag or commit of the hub repo")
    mi.add_argument(
        "--export-env",
        action="store_true",
        help="export in the separate export environment even where torch is importable",
    )
    mi.epilog = (
        "Exporting (tagger, clip without --from-hub) needs torch. Where this environment "
        "has none, a separate export environment is built once in $PHOTOVAULT_EXPORT_ENV "
        "(default ~/.cache/photovault/export-env; about 6 GB on x86_64, 1.5 GB with "
        "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu; pip's other PIP_* "
        "settings apply, PHOTOVAULT_TORCH_PIN picks another torch pair). "
        "`vaultctl models cleanup` removes it."
    )
    mm = msub.add_parser(
        "import",
        help="validate and install a folder of exported ONNX files (ours, or for clip the "
        "hub layout: visual/ textual/ config.json, as Immich publishes)",
    )
    mm.add_argument("kind", choices=["tagger", "clip", "text"])
    mm.add_argument("dir")
    mm.add_argument("--replace", action="store_true")
    mm.add_argument(
        "--store-name", help="clip, hub layout: name in the model store (default: folder name)"
    )
    mm.add_argument(
        "--family",
        choices=["clip", "xlm-roberta", "siglip", "siglip2", "nllb"],
        help="clip, hub layout: the model family when its name does not tell",
    )
    mr = msub.add_parser("remove")
    mr.add_argument("name")
    msub.add_parser(
        "cleanup", help="remove the export environment (torch) that install built"
    ).set_defaults(local=cmd_models_cleanup)
    m.set_defaults(local=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")  # paths as their bytes (see dump_json)
    try:
        if getattr(args, "local", None):
            return int(args.local(args))
        client = Client(socket_path(args))
        return int(args.func(client, args))
    except ClientError as exc:
        print(f"vaultctl: {exc.message}", file=sys.stderr)
        return EXIT_NONE if exc.code == "not_found" else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
