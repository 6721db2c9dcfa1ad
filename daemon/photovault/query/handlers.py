"""Request handlers: one method per operation, each validating its own args.

Paths from clients are mapped onto a configured share; anything outside
every share (including `..` tricks and symlinks pointing out) is refused
(access.py). The operations are split by job: show.py (one photo),
search_handlers.py (search, places, similar, embed); this module holds the
dispatch table, status and control, people and backup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from photovault.people.store import PeopleError
from photovault.query.args import int_arg, path_fields, str_arg
from photovault.query.protocol import ProtocolError, Request
from photovault.query.search_handlers import NEAR_PLACE_KM, SearchHandlers
from photovault.query.server import Caller
from photovault.query.service import VaultService
from photovault.query.show import FaceTimes, ShowHandlers

__all__ = ["NEAR_PLACE_KM", "RESCAN_WAIT_SECONDS", "Handlers", "path_fields"]

#: How long `rescan` waits for the scan before answering "still running".
RESCAN_WAIT_SECONDS = 5.0


class Handlers(SearchHandlers, ShowHandlers):
    """Every operation the socket serves, by name (`ops`)."""

    def __init__(self, vault: VaultService, geocoder: Any = None) -> None:
        super().__init__(vault, geocoder)
        self.ops = {
            "ping": self.ping,
            "status": self.status,
            "pause": self.pause,
            "resume": self.resume,
            "rescan": self.rescan,
            "show": self.show,
            "sidecar": self.sidecar,
            "sidecars_rewrite": self.sidecars_rewrite,
            "sidecars_import": self.sidecars_import,
            "people_list": self.people_list,
            "people_show": self.people_show,
            "people_name": self.people_name,
            "people_rename": self.people_rename,
            "people_merge": self.people_merge,
            "people_reject": self.people_reject,
            "people_suggest": self.people_suggest,
            "search": self.search,
            "places": self.places,
            "similar": self.similar,
            "embed": self.embed,
            "backup": self.backup,
            "check": self.check,
        }

    def handle(self, req: Request, caller: Caller) -> Any:
        fn = self.ops.get(req.op)
        if fn is None:
            raise ProtocolError(
                "unknown_op", f"unknown operation {req.op!r} (known: {', '.join(sorted(self.ops))})"
            )
        return fn(req.args, caller)

    def ping(self, args: dict[str, Any], caller: Caller) -> Any:
        return {"pong": True}

    def status(self, args: dict[str, Any], caller: Caller) -> Any:
        return self.vault.status()

    def check(self, args: dict[str, Any], caller: Caller) -> Any:
        """Catalog vs index vs sidecars; names paths, so for root or the admin group."""
        if not self._identity(caller).admin:
            raise ProtocolError("forbidden", "check needs root or the admin group")
        return self.vault.check()

    def pause(self, args: dict[str, Any], caller: Caller) -> Any:
        self.vault.throttle.pause()
        return {"paused": True}

    def resume(self, args: dict[str, Any], caller: Caller) -> Any:
        self.vault.throttle.resume()
        return {"paused": False}

    def rescan(self, args: dict[str, Any], caller: Caller) -> Any:
        """Start a scan (and an index check) and wait a few seconds for it: a scan
        that fails is an error for the caller, not a silent success. With
        `forget_missing` (one share, root or the admin group), files gone from disk
        in bulk are forgotten, as a person confirmed (see `watch/root.py`)."""
        share = self._share_arg(args)
        forget = args.get("forget_missing", False)
        if not isinstance(forget, bool):
            raise ProtocolError("bad_request", "argument 'forget_missing' must be a boolean")
        if forget and share is None:
            raise ProtocolError(
                "bad_request",
                "forget_missing needs a share (vaultctl rescan SHARE --forget-missing)",
            )
        if forget and not self._identity(caller).admin:
            raise ProtocolError("forbidden", "forget_missing needs root or the admin group")
        job = self.vault.scan_async(share, repair=True, forget_missing=forget)
        finished = job.done.wait(RESCAN_WAIT_SECONDS)
        if job.errors:
            raise ProtocolError(
                "scan_failed", "; ".join(f"{k}: {v}" for k, v in sorted(job.errors.items()))
            )
        return {"scanning": job.names, "finished": finished}

    def sidecars_rewrite(self, args: dict[str, Any], caller: Caller) -> Any:
        share = self._share_arg(args)
        n = self.vault.catalog.reset_sidecars(share)
        self.vault.sidecars.wake()
        return {"queued": n, "share": share}

    def sidecars_import(self, args: dict[str, Any], caller: Caller) -> Any:
        share = self._share_arg(args)
        return {"imported": self.vault.sidecars.import_share(share), "share": share}

    # -- people ------------------------------------------------------------------------

    def _paths_of(self, shas: list[str], caller: Caller) -> list[str]:
        allowed = self._allowed(caller)
        out = []
        for sha in shas:
            for r in self.vault.catalog.files_with_content(sha):
                p = self.vault.resolve(r.share, r.relpath)
                if p is not None and (allowed is None or allowed(os.fspath(p))):
                    out.append(os.fspath(p))  # lossless, as `path_fields`
        return sorted(out)

    def _people_call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except PeopleError as exc:
            raise ProtocolError(
                "not_found" if "no " in str(exc) else "bad_request", str(exc)
            ) from exc

    def people_list(self, args: dict[str, Any], caller: Caller) -> Any:
        stage = self.vault.people
        return [
            {**p, "photos": self._paths_of(stage.people.photos_of(p["id"]), caller)}
            for p in stage.people.people()
        ]

    def people_show(self, args: dict[str, Any], caller: Caller) -> Any:
        pid = int_arg(args, "id")
        stage = self.vault.people
        person = next((p for p in stage.people.people() if p["id"] == pid), None)
        if person is None:
            raise ProtocolError("not_found", f"no person with id {pid}")
        faces = []
        times = FaceTimes(self.vault.catalog)  # each photo read once, not once per face
        for f in self._people_call(stage.people.faces_of, pid):
            paths = self._paths_of([f["photo"]], caller)
            faces.append(
                {
                    "id": f["id"],
                    "box": f["box"],
                    "score": f["score"],
                    "assigned_by": f["assigned_by"],
                    "path": paths[0] if paths else None,
                    **times.of(f),
                }
            )
        return {**person, "faces": faces}

    def people_name(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.name_person, int_arg(args, "id"), str_arg(args, "name")
        )

    def people_rename(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.rename, str_arg(args, "old"), str_arg(args, "new")
        )

    def people_merge(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.merge, int_arg(args, "keep"), int_arg(args, "other")
        )

    def people_reject(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.reject, int_arg(args, "face_id"), int_arg(args, "person_id")
        )

    def people_suggest(self, args: dict[str, Any], caller: Caller) -> Any:
        """Likely merges (never made without a person): both people, the distance of their
        nearest faces, and a few faces of each with the paths this caller may read."""
        out = []
        times = FaceTimes(self.vault.catalog)  # each photo read once, not once per face
        for s in self.vault.people.suggest():
            faces = []
            for f in s["faces"]:
                paths = self._paths_of([f["photo"]], caller)
                faces.append(
                    {
                        "id": f["id"],
                        "person_id": f["person_id"],
                        "box": f["box"],
                        "path": paths[0] if paths else None,
                        **times.of(f),
                    }
                )
            out.append({**s, "faces": faces})
        return out

    # -- backup --------------------------------------------------------------------------

    def backup(self, args: dict[str, Any], caller: Caller) -> Any:
        """A consistent snapshot while running. Admins only: it writes as the daemon."""
        if not self._identity(caller).admin:
            raise ProtocolError("forbidden", "backup needs root or the admin group")
        dest = str_arg(args, "dest")
        assert dest is not None
        if not os.path.isabs(dest):
            raise ProtocolError("bad_request", "dest must be an absolute path")
        from photovault.ops.backup import BackupError, backup

        index = self.vault.index
        try:
            report = backup(
                self.vault.settings.state_dir,
                Path(dest),
                flush=index.flush,
                hold=index.writes_held,
                include_models=bool(args.get("include_models")),
            )
        except (BackupError, OSError) as exc:
            raise ProtocolError("failed", str(exc)) from exc
        return report.to_dict()
