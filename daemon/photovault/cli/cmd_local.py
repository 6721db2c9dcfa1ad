"""Commands that run here, with this user's rights, not through vaultd: export, restore.

Each imports its `ops` module only when it runs: `vaultctl` loads the storage
modules (for restore) only for that command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from photovault.cli.common import EXIT_ERROR, EXIT_OK, load_settings


def cmd_export(args: argparse.Namespace) -> int:
    """Copies for sharing, location removed (runs here, with this user's rights)."""
    from photovault.ops.export import ExportError, export_strip_location

    # FAILED lines and the export's warnings name files by their bytes too, as
    # stdout does (see vaultctl.main), not as "\udcXX" escapes nobody can paste back.
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
            for what in f.dropped:
                print(f"  {what}")
        for path, reason in report.skipped:
            print(f"skipped {path}: {reason}")
    for path, reason in report.failed:
        print(f"vaultctl: FAILED {path}: {reason}", file=sys.stderr)
    return EXIT_OK if not report.failed else EXIT_ERROR


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore needs vaultd stopped: it swaps the state files under it."""
    from photovault.ops.restore import RestoreError, restore, socket_is_live

    settings = load_settings(args)
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
