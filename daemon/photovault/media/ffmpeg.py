"""Running ffmpeg and ffprobe: what their failures mean, and whether they can run.

Kept apart from the sampling (media/video.py) because every caller of the tools
needs the same reading of a failure: ffmpeg missing or unable to start (not on
PATH, not executable, a shared library missing) is `ToolMissing`, an install step
to take; a run killed by a signal (the OOM killer) or past its timeout is
`VideoTransient`, tried again later; anything else is the file's fault, reported
with ffmpeg's own last error line, without its `[mov,mp4 @ 0x...]` prefix.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from photovault.media.types import MediaError

#: How the error of a video that waits for ffmpeg begins, whether ffmpeg is missing
#: or cannot run (it is queued again once ffmpeg works, see health.VideoToolsProbe).
TOOL_MISSING_PREFIX = "ffmpeg is not installed"


INSTALL_HINT = f"{TOOL_MISSING_PREFIX}: apt install ffmpeg"


_CANNOT_RUN = f"{TOOL_MISSING_PREFIX} or cannot run"


#: What the dynamic loader says when a library ffmpeg links against is missing.
_LOADER_ERRORS = ("error while loading shared libraries", "cannot open shared object file")


_PREFIX_RE = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")


#: The level ffmpeg's `-loglevel level+...` puts before each line.
_LEVEL_RE = re.compile(r"^\[(panic|fatal|error|warning|info|verbose|debug|trace)\]\s*")


_ERROR_LEVELS = frozenset({"panic", "fatal", "error"})


#: Lines of ffmpeg's stderr kept besides the frame times (warnings and errors).
_STDERR_LINES = 200


_GENERIC = ("Invalid data found when processing input", "Conversion failed!")


_PTS_RE = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+(?:e-?\d+)?)")


class ToolMissing(MediaError):
    """ffmpeg or ffprobe is not installed: an installation problem, not a bad file,
    so the pipeline retries the file later instead of marking it failed for good."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (ToolMissing, (self.path, self.reason))


class VideoTransient(MediaError):
    """ffmpeg was killed (by a signal: the OOM killer, a shutdown) or ran past its
    timeout (a stalled share): not the file's fault for sure, so it is tried again
    later instead of being marked failed for good."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (VideoTransient, (self.path, self.reason))


def check_tool(tool: str, timeout: float = 5.0) -> str | None:
    """Why `tool` (ffmpeg, ffprobe: a name on PATH or a path) cannot run, or None
    when `tool -version` answers: "not found on PATH", "permission denied: PATH",
    "error while loading shared libraries: libavcodec.so.59: ..."."""
    try:
        proc = subprocess.run(
            [tool, "-version"], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return "not found on PATH"
    except subprocess.TimeoutExpired:
        return f"`{tool} -version` did not answer within {timeout:g} s"
    except OSError as exc:
        return f"{(exc.strerror or str(exc)).lower()}: {exc.filename or tool}"
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").splitlines()
        loader = _loader_error(lines)
        if loader:
            return loader
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return f"`{tool} -version` exits with status {proc.returncode}" + (
            f": {last}" if last else ""
        )
    return None


class StderrLog:
    """ffmpeg's stderr, read line by line as it comes: the frame times from
    `showinfo` (`times`, seconds plus `offset`) and the last warning and error
    lines (`lines`, with ffmpeg's level tag); info lines are not kept."""

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.times: list[float] = []
        self.lines: deque[str] = deque(maxlen=_STDERR_LINES)
        self._arrived = threading.Condition()
        self._closed = False

    def feed(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        body = _PREFIX_RE.sub("", line)
        level = _LEVEL_RE.match(body)
        if level is not None and level.group(1) == "info":
            match = _PTS_RE.search(body)
            if match is not None:
                with self._arrived:
                    self.times.append(round(self.offset + float(match.group(1)), 3))
                    self._arrived.notify_all()
            return
        if line.strip():
            self.lines.append(line)

    def done(self) -> None:
        """stderr is closed: no more times will come."""
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()

    def time_of(self, index: int) -> float | None:
        times = self.times
        return times[index] if index < len(times) else None

    def wait_for(self, index: int, timeout: float) -> None:
        """Wait (at most `timeout` s) until frame `index`'s time has been read."""
        with self._arrived:
            self._arrived.wait_for(lambda: self._closed or index < len(self.times), timeout)


def run_tool(
    path: Path, cmd: list[str], timeout: float, tool: str
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ToolMissing(path, INSTALL_HINT) from None
    except OSError as exc:
        raise ToolMissing(path, cannot_exec(tool, cmd[0], exc)) from None
    except subprocess.TimeoutExpired:
        raise VideoTransient(
            path, f"{tool} did not finish within {timeout:.3g} s (unreadable or stalled file?)"
        ) from None


def cannot_exec(tool: str, program: str, exc: OSError) -> str:
    """'ffmpeg is not installed or cannot run: ffprobe: permission denied: /usr/bin/ffprobe'."""
    why = (exc.strerror or type(exc).__name__).lower()
    return f"{_CANNOT_RUN}: {tool}: {why}: {program}"


def check_exit(path: Path, tool: str, returncode: int, lines: Iterable[str]) -> None:
    """Raise for a failed run that is not the file's fault: killed by a signal
    (`VideoTransient`), or a program the loader could not start (`ToolMissing`)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        raise VideoTransient(path, f"{tool} was killed ({name}; out of memory?)")
    loader = _loader_error(lines) if returncode == 127 else None
    if loader:
        raise ToolMissing(path, f"{_CANNOT_RUN}: {tool}: {loader}")


def _loader_error(lines: Iterable[str]) -> str | None:
    """The dynamic loader's complaint, less the program name it starts with:
    "error while loading shared libraries: libavcodec.so.59: cannot open ..."."""
    for line in lines:
        at = min((i for m in _LOADER_ERRORS if (i := line.find(m)) >= 0), default=-1)
        if at >= 0:
            return line[at:].strip()
    return None


def unplayable(path: Path, stderr: Iterable[str]) -> str:
    """ffmpeg's own words for why a file does not play (its last error line, less
    the `[mov,mp4 @ 0x...]` and file name), or what the file looks like."""
    head = b""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except FileNotFoundError:
        return "file not found (deleted or moved?)"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if not head:
        return "empty file (0 bytes)"
    if looks_like_text(head):
        return "not a video (looks like text)"
    errors: list[str] = []
    others: list[str] = []
    level = "error"  # untagged lines: an older ffmpeg, or a message's continuation
    for raw in stderr:
        line = _PREFIX_RE.sub("", raw.strip())
        tag = _LEVEL_RE.match(line)
        if tag is not None:
            level, line = tag.group(1), line[tag.end() :]
        line = _PREFIX_RE.sub("", line)
        for name in (str(path), path.name):
            if line.startswith(name + ":"):
                line = line[len(name) + 1 :].strip()
                break
        if line:
            (errors if level in _ERROR_LEVELS else others).append(line)
    specific = [line for line in errors if not line.startswith(_GENERIC)]
    message = (specific or errors or others or ["ffmpeg could not read it"])[-1]
    return f"not a playable video: {message}"


def looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    return text.count("\ufffd") <= 3 and sum(c.isprintable() or c in "\r\n\t" for c in text) >= (
        0.95 * len(text)
    )
