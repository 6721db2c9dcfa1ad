"""The search operations: `search`, `places`, `similar` and `embed`.

Turns a request into index filters (with the caller's permissions and place
names resolved by the offline geocoder), runs it and shapes the hits.
"""

from __future__ import annotations

import time
from typing import Any

from photovault.index import Filters
from photovault.index.search import SearchQueryError
from photovault.query.access import HandlerBase
from photovault.query.args import path_fields, str_arg
from photovault.query.protocol import ProtocolError
from photovault.query.server import Caller
from photovault.results import clip_of

#: The radius of `near` a place by name, when none is given: the geocoder has
#: one point per town (its centre), and a town spans a few km around it.
NEAR_PLACE_KM = 10.0


class SearchHandlers(HandlerBase):
    """Searching the index for a caller: filters, ranking, places, vectors."""

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
        """A hit in a reply; a video's carries "at", the moment in seconds."""
        out = {
            **path_fields(h.abs_path or h.path),
            "kind": h.kind,
            "score": round(float(h.score), 4),
            "taken_at": h.taken_at,
            "tags": list(h.tags),
            "people": list(h.people),
            "share": h.share,
            "near_duplicate": h.dhash_distance is not None and h.dhash_distance <= 6,
            "text_match": h.text_match,
            "place": h.place,
        }
        if h.at is not None:
            out["at"] = round(float(h.at), 3)
        return out

    @staticmethod
    def _at(args: dict[str, Any]) -> float | None:
        """`similar`'s optional time into a video, in seconds."""
        at = args.get("at")
        if at is None:
            return None
        if isinstance(at, bool) or not isinstance(at, int | float) or not 0 <= at < 1e7:
            raise ProtocolError("bad_request", "'at' must be a number of seconds, 0 or more")
        return float(at)

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
        try:
            hits = self.vault.index.similar(row.id, self._limit(args), filters, self._at(args))
        except ValueError as exc:
            raise ProtocolError("bad_request", str(exc)) from exc
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
            text = str_arg(args, "text")
            vector = clip.encode_text([text])[0]
        elif kind == "image":
            _share, _rel, row = self._row(args, caller)
            content = self.vault.catalog.content(row.sha256) if row.sha256 else None
            stored = clip_of(content.results).embedding if content else None
            if stored is not None:
                vector = stored
            else:  # not analyzed by this model yet: the daemon decodes and embeds it now
                try:
                    vector = self.vault.embed_image(row)
                except ValueError as exc:
                    raise ProtocolError("bad_request", str(exc)) from exc
                except RuntimeError as exc:
                    raise ProtocolError("internal", str(exc)) from exc
        else:
            raise ProtocolError("bad_request", "'kind' must be 'text' or 'image'")
        return {
            "model": getattr(clip, "model_name", "clip"),
            "vector": [round(float(v), 7) for v in vector],
        }
