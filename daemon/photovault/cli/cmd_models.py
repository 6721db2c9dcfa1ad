"""`vaultctl models`: the model store of the config's state dir, daemon running or not."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from photovault.cli.common import EXIT_ERROR, EXIT_NONE, EXIT_OK, load_settings


def cmd_models(args: argparse.Namespace) -> int:
    """Model store commands work on the config's state dir, daemon running or not."""
    from photovault.models.install import import_model, install
    from photovault.models.store import ModelError, list_models, remove

    if args.action == "list" and args.available:
        return _list_available(args.json)
    store = load_settings(args).models_dir
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
