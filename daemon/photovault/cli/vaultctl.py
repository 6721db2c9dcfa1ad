"""`vaultctl`: the command-line client of vaultd.

The socket comes from `--socket`, else $VAULT_SOCKET, else the `[server]
socket` of the config (`--config`, else $VAULT_CONFIG, else the default).
Exit codes: 0 success, 1 nothing found, 2 error.

This module holds the argument parser and the dispatch; the commands live in
`cli.cmd_*`, the human output in `cli.output`. Only `cli.cmd_local` imports
storage modules, and only when `restore` runs.
"""

from __future__ import annotations

import argparse
import sys

from photovault import DEFAULT_CONFIG_PATH
from photovault.cli.cmd_daemon import (
    cmd_backup,
    cmd_check,
    cmd_show,
    cmd_sidecar,
    cmd_sidecars,
    cmd_simple,
    cmd_status,
)
from photovault.cli.cmd_local import cmd_export, cmd_restore
from photovault.cli.cmd_models import cmd_models, cmd_models_cleanup
from photovault.cli.cmd_people import cmd_people
from photovault.cli.cmd_search import (
    _filters,
    cmd_embed,
    cmd_places,
    cmd_search,
    cmd_similar,
    parse_near,
)
from photovault.cli.common import EXIT_ERROR, EXIT_NONE, EXIT_OK, socket_path
from photovault.cli.output import (
    dump_json,
    format_places,
    format_problems,
    format_results,
    format_show,
    format_status,
    place_label,
)
from photovault.query.client import Client, ClientError

# Names other code and the tests import from here.
__all__ = [
    "EXIT_ERROR",
    "EXIT_NONE",
    "EXIT_OK",
    "_filters",
    "build_parser",
    "dump_json",
    "format_places",
    "format_problems",
    "format_results",
    "format_show",
    "format_status",
    "main",
    "parse_near",
    "place_label",
]


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
    se.add_argument("--kind", choices=["photo", "video"], help="only photos, or only videos")
    se.add_argument("--limit", type=int, default=20)
    se.add_argument("--json", action="store_true")
    se.add_argument("--sheet", metavar="FILE.jpg", help="also render a contact sheet")
    se.set_defaults(func=cmd_search)
    pl_ = sub.add_parser("places", help="where the photos were taken: country, region, town")
    pl_.add_argument("--json", action="store_true")
    pl_.set_defaults(func=cmd_places)
    si = sub.add_parser("similar", help="photos that look like PHOTO, near-duplicates first")
    si.add_argument("photo", help="a photo, or a video (VIDEO@TIME: the frame at that time)")
    si.add_argument("--at", metavar="TIME", help="for a video: seconds, M:SS or H:MM:SS")
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

    ex = sub.add_parser(
        "export", help="copy photos and videos for sharing, GPS, places and GPS tracks removed"
    )
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
        reconfigure(errors="surrogateescape")  # paths as their bytes (see output.dump_json)
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
