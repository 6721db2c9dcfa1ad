"""`vaultctl people`: list, show, name, rename, merge, reject and suggest."""

from __future__ import annotations

import argparse
import json

from photovault.cli.common import EXIT_NONE, EXIT_OK
from photovault.cli.output import dump_json, format_people, format_person, format_suggestions
from photovault.cli.sheets import render_sheet
from photovault.query.client import Client


def cmd_people(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        people = client.call("people_list")
        if args.json:
            print(dump_json(people))
        else:
            for line in format_people(people):
                print(line)
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
            for line in format_suggestions(found):
                print(line)
        return EXIT_OK if found else EXIT_NONE
    if args.action == "show":
        person = client.call("people_show", id=args.id)
        if args.sheet:
            n = render_sheet(person["faces"], args.sheet)
            print(f"wrote {args.sheet} ({n} faces)")
        if args.json:
            print(dump_json(person))
        elif not args.sheet:
            for line in format_person(person):
                print(line)
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
