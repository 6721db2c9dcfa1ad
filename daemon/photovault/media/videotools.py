"""Are ffmpeg and ffprobe installed and able to run? Asked by the main loop.

Without them every video waits: that is an "ffmpeg" problem in `vaultctl status`
(an install step to take), not a fault of each video; once they run again, the
videos that waited go back to the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from photovault.media.video import check_tool
from photovault.problems import Problems

log = logging.getLogger(__name__)


#: How often the main loop checks that ffmpeg and ffprobe run ...
TOOLS_PROBE_SECONDS = 60.0
#: ... and how long each `-version` may take (a hung program counts as broken).
TOOLS_VERSION_TIMEOUT_S = 5.0


class VideoToolsProbe:
    """Do ffmpeg and ffprobe run? Without them every video waits: that is an
    "ffmpeg" problem (an install step to take), not a fault of each video.

    Each check runs `ffmpeg -version` and `ffprobe -version`: a program that is on
    PATH but cannot run (no execute bit, built for another machine, a missing
    shared library after an upgrade) is as broken as a missing one, and the
    problem says why."""

    def __init__(self, problems: Problems, on_installed: Callable[[], int] | None = None) -> None:
        self.problems = problems
        #: Called when the tools run (at start, and once working after a check
        #: found them missing or broken): gives the videos that waited for them
        #: back to the queue; returns how many.
        self.on_installed = on_installed
        self._checked = -TOOLS_PROBE_SECONDS
        self._found: bool | None = None

    def tick(self, now: float) -> None:
        if now - self._checked < TOOLS_PROBE_SECONDS:
            return
        self._checked = now
        reasons = {
            tool: check_tool(tool, TOOLS_VERSION_TIMEOUT_S) for tool in ("ffmpeg", "ffprobe")
        }
        missing = [tool for tool, why in reasons.items() if why == "not found on PATH"]
        broken = [
            f"{tool} cannot run: {why}"
            for tool, why in reasons.items()
            if why and tool not in missing
        ]
        faults = []
        if missing:
            faults.append(
                f"{' and '.join(missing)} not found on PATH "
                "(install the ffmpeg package: apt install ffmpeg)"
            )
        faults += broken
        if faults:
            self.problems.report("ffmpeg", f"videos cannot be read: {'; '.join(faults)}")
        else:
            self.problems.clear("ffmpeg")
        if not faults and self._found is not True and self.on_installed is not None:
            try:
                n = self.on_installed()
            except Exception as exc:  # the catalog is busy or full: try at the next check
                log.warning("could not queue the videos that waited for ffmpeg: %s", exc)
                return
            if n:
                log.info("ffmpeg runs: %d videos that waited for it are queued again", n)
        self._found = not faults
