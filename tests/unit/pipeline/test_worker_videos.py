"""The worker with real videos: frames analyzed and merged, live photos kept as one item
whichever half arrives first, and freed again when the still goes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from skimage import data

from helpers.videos import make_clip
from photovault.analyze import registry
from photovault.analyze.base import AnalysisItem, Analyzer, AnalyzerError
from photovault.analyze.registry import LoadedAnalyzers
from photovault.catalog.store import Catalog
from photovault.media.metadata import MetadataReader
from photovault.pipeline.livephoto import LivePairs
from photovault.pipeline.throttle import QuietHours, Throttle
from photovault.pipeline.worker import Worker

SHARE = "photos"
CID = "1E2D3C4B-5A69-4877-8695-A4B3C2D1E0F9"


class Seen(Analyzer):
    """Records the size of what it was given: a frame of a video, or a photo."""

    name = "seen"
    version = "1"
    image_side = 64

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        self.calls += len(items)
        return [{"tags": [{"tag": "Seen", "confidence": 0.5}]} for _ in items]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Catalog, Worker, Seen]]:
    share = tmp_path / "photos"
    share.mkdir()
    catalog = Catalog(tmp_path / "state" / "catalog.db")
    live = LivePairs(catalog)
    catalog.listeners.append(live)
    seen = Seen()
    loaded = registry.load(["metadata"], None, None)
    analyzers = LoadedAnalyzers([*loaded.active, seen])
    with MetadataReader() as exiftool:
        worker = Worker(
            catalog,
            lambda s, rel: share / rel,
            analyzers,
            Throttle(0, QuietHours(""), 0),
            exiftool,
            batch_size=8,
            decode_workers=1,
            max_pixels=50_000_000,
            live=live,
        )
        worker.start()
        try:
            yield share, catalog, worker, seen
        finally:
            worker.stop()
            catalog.close()


def observe(catalog: Catalog, share: Path, rel: str) -> None:
    st = (share / rel).stat()
    catalog.observe(SHARE, rel, st.st_size, st.st_mtime_ns)


def wait_for(cond: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def results(catalog: Catalog, rel: str) -> tuple[str, dict[str, Any]]:
    """The stored signature and results of a file; empty ones until it has some."""
    row = catalog.get(SHARE, rel)
    content = catalog.content(row.sha256) if row is not None and row.sha256 else None
    if content is None:
        return "", {"metadata": {}, "seen": {}}
    return content.analyzers, content.results


def done(catalog: Catalog, rel: str) -> bool:
    row = catalog.get(SHARE, rel)
    return row is not None and row.state == "done"


def test_a_live_photo_stays_one_item_whichever_half_comes_first_and_is_freed_when_the_still_goes(
    setup: tuple[Path, Catalog, Worker, Seen],
) -> None:
    share, catalog, _worker, seen = setup
    keys = {"com.apple.quicktime.content.identifier": CID}
    make_clip(share / "IMG_0001.MOV", [(data.coffee(), 2.0)], size=(320, 240), keys=keys)
    observe(catalog, share, "IMG_0001.MOV")
    wait_for(lambda: done(catalog, "IMG_0001.MOV"))
    _sig, alone = results(catalog, "IMG_0001.MOV")
    assert alone["metadata"]["kind"] == "video" and "live_photo_of" not in alone["metadata"]
    assert alone["seen"]["frames_analyzed"] >= 1  # a video on its own: analyzed

    Image.fromarray(data.coffee()).save(share / "IMG_0001.JPG")  # the still comes second
    observe(catalog, share, "IMG_0001.JPG")
    wait_for(lambda: done(catalog, "IMG_0001.JPG"))
    wait_for(lambda: results(catalog, "IMG_0001.MOV")[1]["metadata"].get("live_photo_of"))
    signature, half = results(catalog, "IMG_0001.MOV")
    assert half["metadata"]["live_photo_of"] == "IMG_0001.JPG"
    assert "skipped" in half["seen"] and half["seen"]["tags"] == []  # its tags no longer count
    assert signature == "metadata:2,seen:1"  # done: a restart does not analyze it again
    assert catalog.requeue_stale({"metadata": "2", "seen": "1"}) == 0
    wait_for(lambda: results(catalog, "IMG_0001.JPG")[1]["metadata"].get("live_video"))

    calls = seen.calls
    (share / "IMG_0001.JPG").unlink()  # the still goes: the video is a video again
    catalog.forget(SHARE, "IMG_0001.JPG")
    wait_for(lambda: "live_photo_of" not in results(catalog, "IMG_0001.MOV")[1]["metadata"])
    wait_for(lambda: done(catalog, "IMG_0001.MOV"))
    _sig, freed = results(catalog, "IMG_0001.MOV")
    assert "skipped" not in freed["seen"] and freed["seen"]["frames_analyzed"] >= 1
    assert seen.calls > calls


def test_a_same_name_video_without_apples_mark_is_not_a_live_photo(
    setup: tuple[Path, Catalog, Worker, Seen],
) -> None:
    share, catalog, _worker, _seen = setup
    Image.fromarray(data.chelsea()).save(share / "Wedding.jpg")
    make_clip(share / "Wedding.mov", [(data.chelsea(), 2.0)], size=(320, 240))
    observe(catalog, share, "Wedding.mov")
    observe(catalog, share, "Wedding.jpg")
    wait_for(lambda: done(catalog, "Wedding.mov") and done(catalog, "Wedding.jpg"))
    assert "live_video" not in results(catalog, "Wedding.jpg")[1]["metadata"]
    assert "live_photo_of" not in results(catalog, "Wedding.mov")[1]["metadata"]


def test_a_copy_of_a_live_video_elsewhere_keeps_its_results_and_is_no_half(
    setup: tuple[Path, Catalog, Worker, Seen],
) -> None:
    share, catalog, _worker, _seen = setup
    keys = {"com.apple.quicktime.content.identifier": CID}
    make_clip(share / "Videos" / "IMG_0001.MOV", [(data.coffee(), 2.0)], size=(320, 240), keys=keys)
    observe(catalog, share, "Videos/IMG_0001.MOV")
    wait_for(lambda: done(catalog, "Videos/IMG_0001.MOV"))
    (share / "Camera").mkdir()
    Image.fromarray(data.coffee()).save(share / "Camera" / "IMG_0001.JPG")
    (share / "Camera" / "IMG_0001.MOV").write_bytes(
        (share / "Videos" / "IMG_0001.MOV").read_bytes()
    )
    observe(catalog, share, "Camera/IMG_0001.JPG")
    observe(catalog, share, "Camera/IMG_0001.MOV")
    wait_for(lambda: done(catalog, "Camera/IMG_0001.MOV") and done(catalog, "Camera/IMG_0001.JPG"))
    _sig, kept = results(catalog, "Videos/IMG_0001.MOV")  # the same content
    assert "skipped" not in kept["seen"] and kept["seen"]["frames_analyzed"] >= 1
    assert "live_photo_of" not in kept["metadata"]


def test_a_video_half_renamed_away_from_its_still_is_a_video_again(
    setup: tuple[Path, Catalog, Worker, Seen],
) -> None:
    share, catalog, _worker, _seen = setup
    keys = {"com.apple.quicktime.content.identifier": CID}
    Image.fromarray(data.chelsea()).save(share / "IMG_0002.JPG")
    make_clip(share / "IMG_0002.MOV", [(data.chelsea(), 2.0)], size=(320, 240), keys=keys)
    observe(catalog, share, "IMG_0002.JPG")
    observe(catalog, share, "IMG_0002.MOV")
    wait_for(lambda: results(catalog, "IMG_0002.MOV")[1]["metadata"].get("live_photo_of"))
    wait_for(lambda: results(catalog, "IMG_0002.JPG")[1]["metadata"].get("live_video"))
    wait_for(lambda: done(catalog, "IMG_0002.MOV") and done(catalog, "IMG_0002.JPG"))

    (share / "IMG_0002.MOV").rename(share / "Holiday.MOV")
    catalog.move(SHARE, "IMG_0002.MOV", "Holiday.MOV")
    wait_for(lambda: "live_photo_of" not in results(catalog, "Holiday.MOV")[1]["metadata"])
    wait_for(lambda: done(catalog, "Holiday.MOV"))
    wait_for(lambda: "skipped" not in results(catalog, "Holiday.MOV")[1]["seen"])
    wait_for(lambda: "live_video" not in results(catalog, "IMG_0002.JPG")[1]["metadata"])


class Base(Seen):
    name = "base"


class Derived(Seen):
    """Reads `base` from the same item, as the `tags` analyzer reads `clip`."""

    name = "derived"
    requires = ("base",)

    def analyze(self, items: list[AnalysisItem]) -> list[dict[str, Any] | AnalyzerError]:
        self.calls += len(items)
        return [
            {"tags": []} if "base" in item.results else AnalyzerError("no base result")
            for item in items
        ]


def test_an_analyzer_built_on_another_reruns_it_on_a_videos_frames(tmp_path: Path) -> None:
    share = tmp_path / "photos"
    make_clip(share / "clip.mp4", [(data.coffee(), 2.0), (data.chelsea(), 2.0)], size=(320, 240))
    catalog = Catalog(tmp_path / "catalog.db")
    base, derived = Base(), Derived()
    try:
        with MetadataReader() as exiftool:
            for version in ("1", "2"):
                derived.version = version  # a new version of the derived analyzer only
                worker = Worker(
                    catalog,
                    lambda s, rel: share / rel,
                    LoadedAnalyzers([base, derived]),
                    Throttle(0, QuietHours(""), 0),
                    exiftool,
                    batch_size=8,
                    decode_workers=1,
                    max_pixels=50_000_000,
                )
                if version == "1":
                    observe(catalog, share, "clip.mp4")
                else:
                    assert catalog.requeue_stale({"base": "1", "derived": "2"}) == 1
                before = base.calls
                worker.start()
                try:
                    wait_for(lambda: done(catalog, "clip.mp4"))
                finally:
                    worker.stop()
                assert base.calls > before  # the frames sampled now, not the stored ones
        signature, res = results(catalog, "clip.mp4")
        assert signature == "base:1,derived:2" and "error" not in res["derived"]
    finally:
        catalog.close()
