"""Query handlers, called directly on a real daemon running in-process: what each
operation answers, and what a caller who is not an admin may see."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.photos import write_jpeg
from helpers.vault import write_config
from photovault.app import Daemon
from photovault.config import load
from photovault.index.search import SearchQueryError
from photovault.query.handlers import Handlers
from photovault.query.protocol import ProtocolError, Request
from photovault.query.server import Caller

ROOT = Caller(os.getpid(), 0, 0)
NOBODY = Caller(os.getpid(), 65534, 65534)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One running daemon that has ingested two photos, one readable by its owner only."""
    base = tmp_path_factory.mktemp("vault")
    cfg = write_config(base, decode_workers=1)
    write_jpeg(base / "photos" / "public.jpg", seed=1, size=(64, 48))
    os.chmod(write_jpeg(base / "photos" / "private.jpg", seed=2, size=(64, 48)), 0o600)
    d = Daemon(load(cfg))
    d.start()
    try:
        deadline = time.monotonic() + 30
        while not idle(d, done=2):
            assert time.monotonic() < deadline, d.status()
            time.sleep(0.1)
        yield d
    finally:
        d.stop()


def idle(d: Daemon, done: int) -> bool:
    st = d.status()
    (share,) = st["shares"]
    return (
        share["counts"]["done"] == done
        and not (st["queue_depth"] or st["settling"] or st["scanning"])
        and not (st["index_pending"] or st["index_dirty"])
        and not d.catalog.sidecar_records(1)  # every sidecar written
    )


def call(d: Daemon, op: str, caller: Caller = ROOT, **args: Any) -> Any:
    return Handlers(d).handle(Request(op, args), caller)


def refused(d: Daemon, op: str, caller: Caller = ROOT, **args: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call(d, op, caller, **args)
    return info.value


def share_root(d: Daemon) -> Path:
    (share,) = d.settings.shares
    return Path(share.path)


def test_status_lists_problems_and_shares(daemon: Daemon) -> None:
    st = call(daemon, "status")
    assert st["problems"] == []
    (share,) = st["shares"]
    assert share["name"] == "photos" and share["counts"]["done"] == 2


def test_show_of_a_path_outside_every_share_is_not_found(daemon: Daemon, tmp_path: Path) -> None:
    outside = write_jpeg(tmp_path / "elsewhere.jpg", seed=3)
    err = refused(daemon, "show", path=os.fspath(outside))
    assert err.code == "not_found" and "not inside any watched share" in err.message


def test_show_of_a_relative_path_is_a_bad_request(daemon: Daemon) -> None:
    err = refused(daemon, "show", path="photos/public.jpg")
    assert err.code == "bad_request" and "absolute" in err.message


def test_show_of_a_catalogued_photo_gives_its_facts(daemon: Daemon) -> None:
    path = share_root(daemon) / "public.jpg"
    shown = call(daemon, "show", path=os.fspath(path))
    assert shown["path"] == os.fspath(path) and shown["state"] == "done"
    assert (shown["width"], shown["height"]) == (64, 48)


def test_an_unknown_op_is_refused_with_the_known_ops(daemon: Daemon) -> None:
    err = refused(daemon, "frobnicate")
    assert err.code == "unknown_op"
    assert "frobnicate" in err.message
    assert all(op in err.message for op in ("status", "show", "search", "check"))


def test_check_is_forbidden_for_a_caller_who_is_not_an_admin(daemon: Daemon) -> None:
    err = refused(daemon, "check", NOBODY)
    assert err.code == "forbidden"


def test_check_agrees_on_an_idle_daemon_for_root(daemon: Daemon) -> None:
    result = call(daemon, "check")
    assert result["agree"] is True, result
    assert result["counts"] == dict.fromkeys(
        ("index_missing", "index_stale", "index_extra", "sidecars"), 0
    )


def test_rescan_of_an_unknown_share_is_not_found(daemon: Daemon) -> None:
    err = refused(daemon, "rescan", share="no-such-share")
    assert err.code == "not_found" and "no-such-share" in err.message


def test_search_hides_a_photo_the_caller_cannot_read(daemon: Daemon) -> None:
    root = share_root(daemon)
    everything = {"filters": {"shares": ["photos"]}}
    as_root = {h["path"] for h in call(daemon, "search", **everything)["results"]}
    assert as_root == {os.fspath(root / "public.jpg"), os.fspath(root / "private.jpg")}
    as_nobody = {h["path"] for h in call(daemon, "search", NOBODY, **everything)["results"]}
    assert as_nobody == {os.fspath(root / "public.jpg")}


def test_show_of_a_photo_the_caller_cannot_read_is_not_found(daemon: Daemon) -> None:
    err = refused(daemon, "show", NOBODY, path=os.fspath(share_root(daemon) / "private.jpg"))
    assert err.code == "not_found" and err.message == "no such photo"


# -- places and recognized text --------------------------------------------------------

LISBON = {"country_code": "PT", "country": "Portugal", "region": "Lisboa", "city": "Lisbon"}


def test_show_gives_the_place_local_time_and_recognized_text_of_the_stored_results(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = daemon.catalog.content

    def content(sha256: str) -> Any:
        c = stored(sha256)
        assert c is not None
        meta = {
            **c.results.get("metadata", {}),
            "place": LISBON,
            "taken_local": "2023-12-24T23:30:00",
            "local_time": {"offset": "+00:00", "zone": "Europe/Lisbon", "source": "position"},
        }
        text = {"lines": [{"text": "PASTEIS DE BELEM", "box": [0.1, 0.2, 0.5, 0.1], "score": 0.9}]}
        return dataclasses.replace(c, results={**c.results, "metadata": meta, "text": text})

    monkeypatch.setattr(daemon.catalog, "content", content)
    shown = call(daemon, "show", path=os.fspath(share_root(daemon) / "public.jpg"))

    assert shown["place"] == LISBON
    assert shown["taken_local"] == "2023-12-24T23:30:00"
    assert shown["local_time"] == {
        "offset": "+00:00",
        "zone": "Europe/Lisbon",
        "source": "position",
    }
    assert shown["text"] == [
        {"text": "PASTEIS DE BELEM", "box": [0.1, 0.2, 0.5, 0.1], "score": 0.9}
    ]


def test_show_of_a_photo_without_place_or_text_says_so(daemon: Daemon) -> None:
    shown = call(daemon, "show", path=os.fspath(share_root(daemon) / "public.jpg"))
    assert (shown["place"], shown["local_time"], shown["text"]) == (None, None, [])


def test_places_are_aggregated_with_the_callers_permissions(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def places(filters: Any) -> list[dict[str, Any]]:
        seen.append(filters.allowed)
        return [{"country_code": "PT", "country": "Portugal", "photos": 1, "regions": []}]

    monkeypatch.setattr(daemon.index, "places", places)

    assert call(daemon, "places")["places"][0]["country"] == "Portugal"
    call(daemon, "places", NOBODY)
    assert seen[0] is None  # root reads everything
    root = share_root(daemon)
    assert seen[1](os.fspath(root / "public.jpg"))
    assert not seen[1](os.fspath(root / "private.jpg"))


def test_places_of_the_real_index_hide_what_the_caller_cannot_read(daemon: Daemon) -> None:
    from photovault.index import Filters

    root = share_root(daemon)
    idx = daemon.index
    where = {h.abs_path: h for h in idx.search(None, None, Filters(shares=["photos"]), 10)}
    rows = [idx.get(where[os.fspath(root / name)].id) for name in ("public.jpg", "private.jpg")]
    assert all(rows)
    from photovault.index.records import record_from_row
    from photovault.results import Place

    records = [record_from_row(r) for r in rows if r]
    places = [Place("PT", "Portugal", "Lisboa", "Lisbon"), Place("DE", "Germany", None, "Kehl")]
    try:
        idx.upsert(dataclasses.replace(r, place=p) for r, p in zip(records, places, strict=True))
        idx.flush()
        everything = call(daemon, "places")["places"]
        assert [c["country_code"] for c in everything] == ["DE", "PT"]
        assert [c["country_code"] for c in call(daemon, "places", NOBODY)["places"]] == ["PT"]
        hits = call(daemon, "search", filters={"place": "lisboa"})["results"]
        assert [(h["path"], h["place"]) for h in hits] == [(os.fspath(root / "public.jpg"), LISBON)]
    finally:
        idx.upsert(records)
        idx.flush()


class FakeGeocoder:
    def forward(self, name: str, limit: int = 10) -> list[tuple[Any, float, float]]:
        from photovault.results import Place

        if name.lower() != "lisbon":
            return []
        return [(Place("PT", "Portugal", "Lisboa", "Lisbon"), 38.72, -9.14)]

    def town(self, name: str) -> tuple[Any, float, float]:
        from photovault.geo.places import NotATown

        found = self.forward(name)
        if not found:
            raise NotATown(f"no place called {name!r} is known")
        return found[0]


def test_search_near_a_place_name_resolves_it_in_the_daemon(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: list[Any] = []
    monkeypatch.setattr(daemon.index, "search", lambda v, t, f, n: got.append(f) or [])
    handlers = Handlers(daemon, geocoder=FakeGeocoder())

    result = handlers.handle(Request("search", {"filters": {"near": {"name": "Lisbon"}}}), ROOT)

    assert result["near"] == {"place": LISBON, "lat": 38.72, "lon": -9.14, "km": 10.0}
    near = got[0].near_spec()
    assert (near.lat, near.lon, near.km) == (38.72, -9.14, 10.0)
    with pytest.raises(ProtocolError) as info:
        handlers.handle(Request("search", {"filters": {"near": {"name": "Atlantis"}}}), ROOT)
    assert info.value.code == "bad_request" and "Atlantis" in info.value.message


def test_a_search_text_the_index_refuses_is_a_bad_request(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> Any:
        raise SearchQueryError("the search text cannot be searched: no")

    monkeypatch.setattr(daemon.index, "search", refuse)

    err = refused(daemon, "search", text='"plumber"')

    assert err.code == "bad_request" and "search text" in err.message


def test_a_quoted_search_text_finds_photos_by_its_words(daemon: Daemon) -> None:
    assert call(daemon, "search", text='"public"')["results"]


def test_a_video_hit_carries_its_kind_and_moment(daemon: Daemon) -> None:
    from photovault.index import PhotoRecord

    clip = share_root(daemon) / "clip.mp4"
    tags = [{"tag": "Zebra", "confidence": 0.9, "source": "tagger", "at": 5.25}]
    daemon.index.upsert(
        [PhotoRecord(9001, "photos", "clip.mp4", abs_path=os.fspath(clip), kind="video", tags=tags)]
    )
    daemon.index.flush()
    try:
        (found,) = call(daemon, "search", text="zebra")["results"]
        (photo, *_) = call(daemon, "search", text="public")["results"]
    finally:
        daemon.index.delete_ids([9001])

    assert (found["path"], found["kind"], found["at"]) == (os.fspath(clip), "video", 5.25)
    assert photo["kind"] == "photo" and "at" not in photo


def test_show_of_a_video_gives_its_kind_duration_and_the_times_of_what_was_seen(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = daemon.catalog.content

    def content(sha256: str) -> Any:
        c = stored(sha256)
        assert c is not None
        meta = {**c.results.get("metadata", {}), "kind": "video", "duration": 12.5}
        meta["live_photo_of"] = "IMG_0001.HEIC"
        text = {"lines": [{"text": "EXIT", "box": [0.1, 0.2, 0.3, 0.1], "score": 0.9, "at": 4.0}]}
        tags = {"tags": [{"tag": "Dog", "confidence": 0.8, "source": "tags", "at": 7.5}]}
        results = {**c.results, "metadata": meta, "text": text, "tags": tags}
        return dataclasses.replace(c, results=results)

    monkeypatch.setattr(daemon.catalog, "content", content)
    shown = call(daemon, "show", path=os.fspath(share_root(daemon) / "public.jpg"))

    assert (shown["kind"], shown["duration"], shown["live_photo_of"]) == (
        "video",
        12.5,
        "IMG_0001.HEIC",
    )
    assert shown["text"][0]["at"] == 4.0
    assert [(t["tag"], t["at"]) for t in shown["tags"] if t.get("at")] == [("Dog", 7.5)]


def test_show_of_a_photo_says_photo_and_has_no_duration(daemon: Daemon) -> None:
    shown = call(daemon, "show", path=os.fspath(share_root(daemon) / "public.jpg"))
    assert shown["kind"] == "photo" and "duration" not in shown and "live_video" not in shown


def test_similar_refuses_a_time_that_is_not_a_number(daemon: Daemon) -> None:
    err = refused(daemon, "similar", path=os.fspath(share_root(daemon) / "public.jpg"), at="5")
    assert err.code == "bad_request" and "'at'" in err.message


def test_similar_at_a_time_of_a_photo_is_a_bad_request(daemon: Daemon) -> None:
    err = refused(daemon, "similar", path=os.fspath(share_root(daemon) / "public.jpg"), at=5)
    assert err.code == "bad_request" and "videos" in err.message


def test_a_person_seen_many_times_in_one_video_reads_its_content_once(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from photovault.people.store import PeopleStore

    sha = call(daemon, "show", path=os.fspath(share_root(daemon) / "public.jpg"))["sha256"]
    boxes = [[0.1 * i, 0.1, 0.08, 0.08] for i in range(8)]
    store = PeopleStore(tmp_path / "people.sqlite3")
    faces = [{"box": b, "score": 0.9, "embedding": [float(i + 1)] * 8} for i, b in enumerate(boxes)]
    ids = store.add_photo_faces(sha, faces)
    pid = store.create_person("Ana")
    for fid in ids:
        store.assign(fid, pid)
    monkeypatch.setattr(daemon.people, "people", store)

    stored = daemon.catalog.content
    reads: list[str] = []

    def content(sha256: str) -> Any:  # the real catalog's, counted, with video faces
        reads.append(sha256)
        c = stored(sha256)
        assert c is not None
        meta = {**c.results.get("metadata", {}), "kind": "video", "duration": 30.0}
        seen = {"faces": [{"box": b, "score": 0.9, "at": 2.0 * i} for i, b in enumerate(boxes)]}
        return dataclasses.replace(c, results={**c.results, "metadata": meta, "faces": seen})

    monkeypatch.setattr(daemon.catalog, "content", content)
    shown = call(daemon, "people_show", id=pid)

    assert [f["at"] for f in shown["faces"]] == [2.0 * i for i in range(8)]
    assert reads == [sha]
