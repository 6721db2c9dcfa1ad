"""Request handlers: one method per operation, each validating its own args.

Paths from clients are mapped onto a configured share; anything outside
every share (including `..` tricks and symlinks pointing out) is refused.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

from photovault.catalog.store import FileRow
from photovault.index import Filters
from photovault.index.search import SearchQueryError
from photovault.people.store import PeopleError
from photovault.query.permissions import Identity
from photovault.query.protocol import ProtocolError, Request
from photovault.query.server import Caller
from photovault.query.service import VaultService
from photovault.results import metadata_of, photo_tags, text_of
from photovault.sidecar.keywords import person_tags
from photovault.sidecar.reader import read_sidecar

#: How long `rescan` waits for the scan before answering "still running".
RESCAN_WAIT_SECONDS = 5.0
#: The radius of `near` a place by name, when none is given: the geocoder has
#: one point per town (its centre), and a town spans a few km around it.
NEAR_PLACE_KM = 10.0


def _str_arg(args: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise ProtocolError("bad_request", f"missing argument {name!r}")
        return None
    if not isinstance(value, str) or "\0" in value or len(value) > 4096 or not _bytes_ok(value):
        raise ProtocolError("bad_request", f"argument {name!r} must be a path-like string")
    return value


def _bytes_ok(value: str) -> bool:
    """Whether `value` names bytes. A file name that is not UTF-8 arrives as JSON
    \\udcXX escapes (vaultctl's argv decoded with surrogateescape), which
    `os.fsencode` turns back into the same bytes; other lone surrogates name none."""
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        return False
    return True


def path_fields(path: str) -> dict[str, str]:
    """A path in a reply. "path" is a str in which bytes that are not UTF-8 are
    lone surrogates (surrogateescape): JSON carries them as \\udcXX escapes and
    Python's json reads them back exactly, so the path can be sent back as it
    came. Other JSON readers (jq) replace them, so such a path also comes as
    "path_bytes", base64 of the name's bytes; a UTF-8 name has no "path_bytes"."""
    out = {"path": path}
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        out["path_bytes"] = base64.b64encode(raw).decode("ascii")
    return out


def _int_arg(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_request", f"argument {name!r} must be an integer")
    return value


class Handlers:
    def __init__(self, vault: VaultService, geocoder: Any = None) -> None:
        #: The running daemon, seen through what the handlers need (query/service.py).
        self.vault = vault
        #: Finds places by name for `near` (geo.places.Geocoder); None: the
        #: process's one, loaded on the first such search.
        self.geocoder = geocoder
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

    def _share_arg(self, args: dict[str, Any]) -> str | None:
        share = _str_arg(args, "share", required=False)
        if share is not None and self.vault.settings.share(share) is None:
            raise ProtocolError("not_found", f"no share named {share!r}")
        return share

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

    def locate(self, raw: str) -> tuple[str, str]:
        """Absolute path -> (share, relpath), or a not_found error."""
        if not os.path.isabs(raw):
            raise ProtocolError("bad_request", "path must be absolute")
        p = os.path.normpath(raw)
        for share in self.vault.settings.shares:
            for root in {os.path.normpath(share.path), os.path.realpath(share.path)}:
                if p.startswith(root + os.sep):
                    return share.name, p[len(root) + 1 :]
        raise ProtocolError("not_found", f"{raw} is not inside any watched share")

    def _row(self, args: dict[str, Any], caller: Caller) -> tuple[str, str, FileRow]:
        """The catalogued photo at args["path"], if this caller may open it."""
        share, rel, row = self._row_any(args)
        allowed = self._allowed(caller)
        path = self.vault.resolve(row.share, row.relpath)
        if allowed is not None and (path is None or not allowed(os.fspath(path))):
            raise ProtocolError("not_found", "no such photo")  # not even that it exists
        return share, rel, row

    def _row_any(self, args: dict[str, Any]) -> tuple[str, str, FileRow]:
        raw = _str_arg(args, "path")
        assert raw is not None
        share, rel = self.locate(raw)
        row = self.vault.catalog.get(share, rel)
        if row is None:
            raise ProtocolError(
                "not_found", f"{raw} is not in the catalog (not a photo, ignored, or not seen yet)"
            )
        return share, rel, row

    def sidecar(self, args: dict[str, Any], caller: Caller) -> Any:
        """What we wrote into a photo's sidecar, read back from the file itself."""
        _share, _rel, row = self._row(args, caller)
        path = self.vault.sidecars.path_for(row)
        record = self.vault.catalog.sidecar(row.id) or {}
        out: dict[str, Any] = {
            "sidecar": os.fspath(path) if path else None,
            "state": record.get("state", "pending"),
            "warning": record.get("warning"),
            "exists": False,
            "keywords": [],
            "faces": [],
        }
        if path is not None and path.exists():
            content = self.vault.catalog.content(row.sha256) if row.sha256 else None
            orientation = int((content.metadata if content else {}).get("orientation") or 1)
            result = read_sidecar(path, orientation)
            out["exists"] = True
            out["problem"] = result.problem
            out["keywords"] = ["|".join(k.path) for k in result.keywords if k.ours]
            out["other_keywords"] = ["|".join(k.path) for k in result.keywords if not k.ours]
            out["faces"] = [
                {
                    "face_id": f.face_id,
                    "name": f.name,
                    "box": f.box,
                    "confidence": f.confidence,
                    "model": f.model,
                }
                for f in result.faces
                if f.ours
            ]
        return out

    def sidecars_rewrite(self, args: dict[str, Any], caller: Caller) -> Any:
        share = self._share_arg(args)
        n = self.vault.catalog.reset_sidecars(share)
        self.vault.sidecars.wake()
        return {"queued": n, "share": share}

    def sidecars_import(self, args: dict[str, Any], caller: Caller) -> Any:
        share = self._share_arg(args)
        return {"imported": self.vault.sidecars.import_share(share), "share": share}

    def show(self, args: dict[str, Any], caller: Caller) -> Any:
        share, rel, row = self._row(args, caller)
        path = self.vault.resolve(share, rel) or Path(rel)
        out: dict[str, Any] = {
            **path_fields(os.fspath(path)),
            "share": share,
            "state": row.state,
            "attempts": row.attempts,
            "error": row.last_error,
            "sha256": row.sha256,
            "size": row.size,
            "taken_at": None,
            "gps": None,
            "camera": None,
            "lens": None,
            "width": None,
            "height": None,
            "orientation": None,
            "taken_local": None,
            "local_time": None,
            "place": None,
            "text": [],
        }
        content = self.vault.catalog.content(row.sha256) if row.sha256 else None
        if content is not None:
            facts = content.metadata
            for key in (
                "taken_at",
                "gps",
                "camera",
                "lens",
                "width",
                "height",
                "orientation",
                "mime",
            ):
                out[key] = facts.get(key)
            meta = metadata_of(content.results)
            out["taken_local"] = meta.taken_local
            out["local_time"] = meta.local_time.to_dict() if meta.local_time else None
            out["place"] = meta.place.to_dict() if meta.place else None
            out["text"] = [line.to_dict() for line in text_of(content.results).lines]
            out["analyzers"] = content.analyzers
            out["tags"] = person_tags(
                photo_tags(content.results), *self.vault.catalog.person_keywords(row.id)
            )
            out["labels"] = (content.results.get("tagger") or {}).get("labels", [])
            out["results"] = {k: v for k, v in content.results.items() if k not in ("clip",)}
        out["faces"] = [
            {
                "id": f["id"],
                "box": f["box"],
                "person_id": f["person_id"],
                "person": f["person"],
                "score": f["score"],
            }
            for f in (self.vault.people.faces_for(row.sha256) if row.sha256 else [])
        ]
        record = self.vault.catalog.sidecar(row.id)
        sidecar = self.vault.sidecars.path_for(row)
        out["sidecar"] = os.fspath(sidecar) if sidecar and sidecar.exists() else None
        if record:
            out["sidecar_state"] = record["state"]
            if record["warning"]:
                out["sidecar_warning"] = record["warning"]
            if record["imported"]:
                out["sidecar_keywords"] = record["imported"]["keywords"]
        return out

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
        pid = _int_arg(args, "id")
        stage = self.vault.people
        person = next((p for p in stage.people.people() if p["id"] == pid), None)
        if person is None:
            raise ProtocolError("not_found", f"no person with id {pid}")
        faces = []
        for f in self._people_call(stage.people.faces_of, pid):
            paths = self._paths_of([f["photo"]], caller)
            faces.append(
                {
                    "id": f["id"],
                    "box": f["box"],
                    "score": f["score"],
                    "assigned_by": f["assigned_by"],
                    "path": paths[0] if paths else None,
                }
            )
        return {**person, "faces": faces}

    def people_name(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.name_person, _int_arg(args, "id"), _str_arg(args, "name")
        )

    def people_rename(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.rename, _str_arg(args, "old"), _str_arg(args, "new")
        )

    def people_merge(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.merge, _int_arg(args, "keep"), _int_arg(args, "other")
        )

    def people_reject(self, args: dict[str, Any], caller: Caller) -> Any:
        return self._people_call(
            self.vault.people.reject, _int_arg(args, "face_id"), _int_arg(args, "person_id")
        )

    def people_suggest(self, args: dict[str, Any], caller: Caller) -> Any:
        """Likely merges (never made without a person): both people, the distance of their
        nearest faces, and a few faces of each with the paths this caller may read."""
        out = []
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
                    }
                )
            out.append({**s, "faces": faces})
        return out

    # -- search ------------------------------------------------------------------------

    def _identity(self, caller: Caller) -> Identity:
        return Identity.of(caller.uid, caller.gid, self.vault.settings.server.admin_group)

    def _allowed(self, caller: Caller) -> Any:
        """Predicate on absolute paths: what this caller could open (None: everything)."""
        ident = self._identity(caller)
        if ident.admin:
            return None
        roots = [(os.fspath(s.path) + os.sep, s.path) for s in self.vault.settings.shares]

        def allowed(abs_path: str) -> bool:
            for prefix, root in roots:
                if abs_path.startswith(prefix):
                    return ident.can_read(Path(abs_path), root)
            return False

        return allowed

    def _filters(
        self, args: dict[str, Any], caller: Caller, resolved: dict[str, Any] | None = None
    ) -> Filters:
        """The search filters of a request, with the caller's permissions. A
        `near` given by place name is resolved here (and told in `resolved`)."""
        raw = args.get("filters") or {}
        if not isinstance(raw, dict):
            raise ProtocolError("bad_request", "'filters' must be an object")
        near = raw.get("near")
        if isinstance(near, dict) and "name" in near:
            where = self._near_place(near)
            raw = {**raw, "near": {k: where[k] for k in ("lat", "lon", "km")}}
            if resolved is not None:
                resolved.update(where)
        try:
            filters = Filters.from_dict(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise ProtocolError("bad_request", f"bad filter: {exc}") from exc
        filters.allowed = self._allowed(caller)
        if filters.place is not None:
            filters.place_also = self._place_keys(filters)
        return filters

    def _place_keys(self, filters: Filters) -> tuple[str, ...]:
        """The other folded names `place` may mean (its aliases and, for a country,
        its code: "USA" -> "us", "München" -> "munich"), from the offline geocoder.
        A name that is neither in the gazetteer nor among the library's places
        (a misspelling) is a bad_request rather than a silent empty result."""
        from photovault.geo.places import GeoDataMissing, default_geocoder, fold

        name = filters.place or ""
        try:
            keys = (self.geocoder or default_geocoder()).place_keys_for(name)
        except GeoDataMissing:
            return ()  # no gazetteer: the name as it is
        if keys:
            return tuple(k for k in keys if k != fold(name))
        if self.vault.index.places(Filters(place=name, allowed=filters.allowed)):
            return ()
        raise ProtocolError(
            "bad_request",
            f"no place called {name!r} is known (`vaultctl places` lists the library's)",
        )

    def _near_place(self, near: dict[str, Any]) -> dict[str, Any]:
        """{"name", "km"} -> {"place", "lat", "lon", "km"}: the town of that name
        ("Town", "Town, Region" or "Town, Country"; of several, the most populous;
        towns before regions and countries), found by the offline geocoder; km
        defaults to NEAR_PLACE_KM. A region or a country is a bad_request that
        points to `place`."""
        name = near.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ProtocolError("bad_request", "near 'name' must be a place name")
        unknown = set(near) - {"name", "km"}
        if unknown:
            raise ProtocolError("bad_request", f"unknown near key(s): {', '.join(sorted(unknown))}")
        from photovault.geo.places import GeoDataMissing, NotATown, default_geocoder

        try:
            place, lat, lon = (self.geocoder or default_geocoder()).town(name)
        except GeoDataMissing as exc:
            raise ProtocolError("unavailable", f"place names are not available: {exc}") from exc
        except NotATown as exc:
            raise ProtocolError("bad_request", str(exc)) from exc
        km = near.get("km", NEAR_PLACE_KM)
        return {"place": place.to_dict(), "lat": lat, "lon": lon, "km": km}

    @staticmethod
    def _limit(args: dict[str, Any]) -> int:
        limit = args.get("limit", 20)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ProtocolError("bad_request", "'limit' must be an integer from 1 to 1000")
        return limit

    def _clip(self) -> Any:
        return self.vault.clip()

    @staticmethod
    def _hit(h: Any) -> dict[str, Any]:
        return {
            **path_fields(h.abs_path or h.path),
            "score": round(float(h.score), 4),
            "taken_at": h.taken_at,
            "tags": list(h.tags),
            "people": list(h.people),
            "share": h.share,
            "near_duplicate": h.dhash_distance is not None and h.dhash_distance <= 6,
            "text_match": h.text_match,
            "place": h.place,
        }

    def search(self, args: dict[str, Any], caller: Caller) -> Any:
        started = time.monotonic()
        text = args.get("text") or ""
        if not isinstance(text, str) or len(text) > 1000:
            raise ProtocolError("bad_request", "'text' must be a string of at most 1000 chars")
        if not text.strip() and not args.get("filters"):
            raise ProtocolError("bad_request", "give a text, a filter, or both")
        near: dict[str, Any] = {}
        filters = self._filters(args, caller, near)
        clip = self._clip()
        vector = clip.encode_text([text])[0] if clip is not None and text.strip() else None
        # With CLIP, the text ranks too: keywords, places and recognized text are
        # fused with the meaning (index.search), not switched off by it.
        try:
            hits = self.vault.index.search(vector, text.strip() or None, filters, self._limit(args))
        except SearchQueryError as exc:
            raise ProtocolError("bad_request", str(exc)) from exc
        self.vault.search_latency(time.monotonic() - started)
        out: dict[str, Any] = {
            "mode": "semantic+keywords"
            if vector is not None
            else ("keywords" if text.strip() else "filters"),
            "results": [self._hit(h) for h in hits],
        }
        if near:
            out["near"] = near
        return out

    def places(self, args: dict[str, Any], caller: Caller) -> Any:
        """The places of the photos this caller may read, with photo counts:
        country -> region -> town (optionally within `filters`)."""
        filters = self._filters(args, caller)
        return {"places": self.vault.index.places(filters)}

    def similar(self, args: dict[str, Any], caller: Caller) -> Any:
        started = time.monotonic()
        _share, _rel, row = self._row(args, caller)
        filters = self._filters({"filters": args.get("filters") or {}}, caller)
        hits = self.vault.index.similar(row.id, self._limit(args), filters)
        self.vault.search_latency(time.monotonic() - started)
        return {"results": [self._hit(h) for h in hits]}

    def embed(self, args: dict[str, Any], caller: Caller) -> Any:
        """The vector the daemon stores (image) or searches with (text)."""
        clip = self._clip()
        if clip is None:
            raise ProtocolError(
                "unavailable",
                "no CLIP model is active (vaultctl models "
                "install clip ..., and enable 'clip' in [analyzers])",
            )
        kind = args.get("kind")
        if kind == "text":
            text = _str_arg(args, "text")
            vector = clip.encode_text([text])[0]
        elif kind == "image":
            _share, _rel, row = self._row(args, caller)
            path = self.vault.resolve(row.share, row.relpath)
            assert path is not None
            content = self.vault.catalog.content(row.sha256) if row.sha256 else None
            stored = (content.results.get("clip") or {}) if content else {}
            if "embedding" in stored:
                vector = stored["embedding"]
            else:
                from photovault.analyze.base import AnalysisItem
                from photovault.media.decode import decode_image
                from photovault.media.types import MediaError, PhotoMetadata

                try:
                    image = decode_image(path, clip.image_side)
                except MediaError as exc:
                    raise ProtocolError("bad_request", str(exc)) from exc
                (res,) = clip.analyze(
                    [AnalysisItem(row.id, path, row.sha256 or "", image, PhotoMetadata())]
                )
                if not isinstance(res, dict):
                    raise ProtocolError("internal", str(res))
                vector = res["embedding"]
        else:
            raise ProtocolError("bad_request", "'kind' must be 'text' or 'image'")
        return {
            "model": getattr(clip, "model_name", "clip"),
            "vector": [round(float(v), 7) for v in vector],
        }

    # -- backup --------------------------------------------------------------------------

    def backup(self, args: dict[str, Any], caller: Caller) -> Any:
        """A consistent snapshot while running. Admins only: it writes as the daemon."""
        if not self._identity(caller).admin:
            raise ProtocolError("forbidden", "backup needs root or the admin group")
        dest = _str_arg(args, "dest")
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
