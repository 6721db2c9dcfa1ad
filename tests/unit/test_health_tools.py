"""Without ffmpeg, videos cannot be read: that shows in status until it is installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from photovault.health import TOOLS_PROBE_SECONDS, VideoToolsProbe
from photovault.problems import Problems


def test_missing_ffmpeg_is_a_problem_until_it_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    problems = Problems()
    requeued: list[float] = []
    probe = VideoToolsProbe(problems, lambda: requeued.append(1.0) or 3)
    probe.tick(0.0)
    (found,) = problems.snapshot()
    assert found.kind == "ffmpeg" and "apt install ffmpeg" in found.message
    assert "ffmpeg and ffprobe" in found.message
    for tool in ("ffmpeg", "ffprobe"):
        real = shutil.which(tool, path=os.defpath + ":/usr/bin")
        assert real, f"{tool} must be installed for the test suite"
        (empty / tool).symlink_to(real)
    probe.tick(1.0)  # not due yet: checked once a minute
    assert problems.active("ffmpeg")
    assert requeued == []
    probe.tick(TOOLS_PROBE_SECONDS + 1)
    assert not problems.snapshot()
    assert len(requeued) == 1  # the videos that waited go back to the queue, once
    probe.tick(3 * TOOLS_PROBE_SECONDS)
    assert len(requeued) == 1


def test_videos_that_waited_for_ffmpeg_are_queued_again(tmp_path: Path) -> None:
    from photovault.catalog.store import Catalog
    from photovault.media.video import TOOL_MISSING_PREFIX

    catalog = Catalog(tmp_path / "catalog.db")
    try:
        for name in ("a.mp4", "b.mp4", "c.jpg"):
            catalog.observe("s", name, 1, 1)
        rows = {r.relpath: r for r in catalog.claim(3)}
        catalog.fail(rows["a.mp4"].id, f"{TOOL_MISSING_PREFIX}: apt install ffmpeg", permanent=True)
        catalog.fail(rows["b.mp4"].id, "not a playable video: moov atom not found", permanent=True)
        catalog.fail(rows["c.jpg"].id, f"{TOOL_MISSING_PREFIX}: apt install ffmpeg")
        assert catalog.retry_failed_with(f"{TOOL_MISSING_PREFIX}%") == 2
        states = {n: catalog.get("s", n).state for n in ("a.mp4", "b.mp4", "c.jpg")}
        assert states == {"a.mp4": "pending", "b.mp4": "quarantined", "c.jpg": "pending"}
    finally:
        catalog.close()
