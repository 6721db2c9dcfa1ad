"""Without ffmpeg, videos cannot be read: that shows in status until it is installed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from photovault.media import videotools
from photovault.media.videotools import TOOLS_PROBE_SECONDS, VideoToolsProbe
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


def link_real(folder: Path, tool: str) -> None:
    real = shutil.which(tool, path=os.defpath + ":/usr/bin")
    assert real, f"{tool} must be installed for the test suite"
    (folder / tool).symlink_to(real)


@pytest.mark.parametrize(
    ("write", "why"),
    [
        # No execute bit: shutil.which does not see it, so this read "not found".
        (lambda p: p.write_text("#!/bin/sh\nexit 0\n"), "ffmpeg cannot run: permission denied"),
        # On PATH and executable, but not a program this machine runs.
        (lambda p: p.write_bytes(b"\x7fELF\x00garbage"), "ffmpeg cannot run: exec format error"),
        # An upgrade left it without a library it links against.
        (
            lambda p: p.write_text(
                "#!/bin/sh\necho 'ffmpeg: error while loading shared libraries: "
                "libavcodec.so.59: cannot open shared object file' >&2\nexit 127\n"
            ),
            "ffmpeg cannot run: error while loading shared libraries: libavcodec.so.59",
        ),
    ],
    ids=["no-execute-bit", "exec-format", "missing-library"],
)
def test_an_ffmpeg_on_path_that_cannot_run_is_a_problem_until_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path], object], why: str
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    link_real(folder, "ffprobe")
    broken = folder / "ffmpeg"
    write(broken)
    broken.chmod(0o644 if "permission" in why else 0o755)
    monkeypatch.setenv("PATH", str(folder))
    problems = Problems()
    requeued: list[int] = []
    probe = VideoToolsProbe(problems, lambda: requeued.append(1) or 1)
    probe.tick(0.0)
    (found,) = problems.snapshot()
    assert found.kind == "ffmpeg"
    assert found.message.startswith(f"videos cannot be read: {why}")
    assert requeued == []  # the videos keep waiting
    broken.unlink()
    link_real(folder, "ffmpeg")
    probe.tick(TOOLS_PROBE_SECONDS)
    assert not problems.snapshot()
    assert requeued == [1]


def test_a_hung_ffmpeg_is_a_problem_not_a_stalled_main_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    link_real(folder, "ffprobe")
    hung = folder / "ffmpeg"
    hung.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    hung.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setattr(videotools, "TOOLS_VERSION_TIMEOUT_S", 0.3)
    problems = Problems()
    VideoToolsProbe(problems).tick(0.0)
    (found,) = problems.snapshot()
    assert found.message == (
        "videos cannot be read: ffmpeg cannot run: `ffmpeg -version` did not answer within 0.3 s"
    )
