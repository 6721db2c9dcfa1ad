"""Commands that find photos: search, similar, places, and the CLIP vector of one."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from photovault.cli.common import EXIT_NONE, EXIT_OK
from photovault.cli.output import dump_json, format_places, place_label, print_results
from photovault.cli.sheets import render_contact_sheet
from photovault.query.client import Client, ClientError


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if args.person:
        f["persons"] = args.person
    if args.tag:
        f["tags"] = args.tag
    for key in ("after", "before", "camera", "place", "path", "kind"):
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


def parse_time(text: str) -> float:
    """Seconds into a video: "5", "2.5", "0:05", "1:02:03"."""
    try:
        parts = [float(p) for p in text.strip().split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise ClientError("bad_request", f"a time is SECONDS, M:SS or H:MM:SS, got {text!r}")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def split_moment(photo: str, at: str | None) -> tuple[str, float | None]:
    """`similar`'s file and time: "clip.mp4" with --at, or "clip.mp4@5" (taken
    as a time only when no file of that whole name exists)."""
    if at is not None:
        return photo, parse_time(at)
    name, sep, when = photo.rpartition("@")
    if sep and name and when and not os.path.lexists(photo):
        return name, parse_time(when)
    return photo, None


def cmd_similar(client: Client, args: argparse.Namespace) -> int:
    photo, at = split_moment(args.photo, getattr(args, "at", None))
    extra = {} if at is None else {"at": at}
    result = client.call("similar", path=os.path.abspath(photo), limit=args.limit, **extra)
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
