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
    probe = VideoToolsProbe(problems)
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
    probe.tick(TOOLS_PROBE_SECONDS + 1)
    assert not problems.snapshot()
