"""An ffmpeg that is there but cannot run is an installation problem, not a bad file.

Real broken installs, made in a temporary folder: a program without the execute
bit, one the kernel cannot execute, one the dynamic loader cannot start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from skimage import data as skdata

from helpers.videos import make_clip
from photovault.media.video import (
    TOOL_MISSING_PREFIX,
    ToolMissing,
    VideoSampling,
    check_tool,
    decode_video,
    probe,
)

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

MISSING_LIBRARY = (
    "error while loading shared libraries: libavdevice.so.59: "
    "cannot open shared object file: No such file or directory"
)
LOADER = "{tool}: " + MISSING_LIBRARY  # the loader names the program first


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("tools") / "clip.mp4", [(skdata.chelsea(), 1.0)])


def broken(folder: Path, tool: str, kind: str) -> Path:
    """`tool` in `folder`, broken as `kind` says: "noexec", "format" or "loader"."""
    folder.mkdir(exist_ok=True)
    path = folder / tool
    if kind == "noexec":
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o644)
    elif kind == "format":
        path.write_bytes(b"\x7fELF" + b"\x00garbage" * 8)  # not a program this machine runs
        path.chmod(0o755)
    else:
        path.write_text(f"#!/bin/sh\necho '{LOADER.format(tool=tool)}' >&2\nexit 127\n")
        path.chmod(0o755)
    return path


@pytest.mark.parametrize("tool", ["ffmpeg", "ffprobe"])
def test_a_program_without_the_execute_bit_is_an_installation_problem(
    clip: Path, tmp_path: Path, tool: str
) -> None:
    path = broken(tmp_path, tool, "noexec")
    with pytest.raises(ToolMissing) as err:
        decode_video(clip, 64, settings=VideoSampling(**{tool: str(path)}))
    assert err.value.reason == (
        f"ffmpeg is not installed or cannot run: {tool}: permission denied: {path}"
    )


@pytest.mark.parametrize("tool", ["ffmpeg", "ffprobe"])
def test_a_program_of_the_wrong_format_is_an_installation_problem(
    clip: Path, tmp_path: Path, tool: str
) -> None:
    path = broken(tmp_path, tool, "format")
    with pytest.raises(ToolMissing) as err:
        decode_video(clip, 64, settings=VideoSampling(**{tool: str(path)}))
    assert err.value.reason == (
        f"ffmpeg is not installed or cannot run: {tool}: exec format error: {path}"
    )


@pytest.mark.parametrize("tool", ["ffmpeg", "ffprobe"])
def test_a_missing_shared_library_is_an_installation_problem(
    clip: Path, tmp_path: Path, tool: str
) -> None:
    path = broken(tmp_path, tool, "loader")
    with pytest.raises(ToolMissing) as err:
        decode_video(clip, 64, settings=VideoSampling(**{tool: str(path)}))
    assert err.value.reason == (f"ffmpeg is not installed or cannot run: {tool}: {MISSING_LIBRARY}")


def test_a_broken_ffmpeg_found_on_path_is_an_installation_problem_too(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken(tmp_path, "ffprobe", "format")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing) as err:
        probe(clip)
    assert err.value.reason.startswith(TOOL_MISSING_PREFIX)


@pytest.mark.parametrize("kind", ["noexec", "format", "loader"])
def test_every_installation_problem_begins_with_the_prefix_videos_are_requeued_by(
    clip: Path, tmp_path: Path, kind: str
) -> None:
    path = broken(tmp_path, "ffmpeg", kind)
    with pytest.raises(ToolMissing) as err:
        decode_video(clip, 64, settings=VideoSampling(ffmpeg=str(path)))
    assert err.value.reason.startswith(TOOL_MISSING_PREFIX)


def test_check_tool_says_why_a_program_cannot_run(tmp_path: Path) -> None:
    assert check_tool("ffmpeg") is None
    assert check_tool(str(tmp_path / "nothing")) == "not found on PATH"
    noexec = broken(tmp_path, "ffmpeg", "noexec")
    assert check_tool(str(noexec)) == f"permission denied: {noexec}"
    wrong = broken(tmp_path, "ffprobe", "format")
    assert check_tool(str(wrong)) == f"exec format error: {wrong}"
    loader = broken(tmp_path / "lib", "ffprobe", "loader")
    assert check_tool(str(loader)) == MISSING_LIBRARY
