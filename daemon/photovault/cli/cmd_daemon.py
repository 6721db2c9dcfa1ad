"""Commands that control vaultd or ask it about its state and about one photo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from photovault.cli.common import EXIT_NONE, EXIT_OK
from photovault.cli.output import dump_json, format_show, format_status
from photovault.query.client import Client


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


def cmd_backup(client: Client, args: argparse.Namespace) -> int:
    r = client.call("backup", dest=os.path.abspath(args.dest), include_models=args.include_models)
    print(f"backup written to {r['path']}")
    return EXIT_OK
