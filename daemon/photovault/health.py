"""Is the state disk (catalog, index, people) writable with room to spare?

The main loop asks every second; the probe itself runs every DISK_PROBE_SECONDS
(statvfs: free space, a read-only mount) and writes a small file only every
DISK_WRITE_SECONDS or while the disk is failing, because even a small write every
few seconds keeps a NAS disk from spinning down. A fault is a "disk" problem
(problems.py) until it is gone; work that writes waits meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from photovault.problems import Problems

log = logging.getLogger(__name__)

#: How often the main loop checks the state dir's free space and mount (statvfs) ...
DISK_PROBE_SECONDS = 5.0
#: ... and how often it also writes a small file there (every check while it fails).
DISK_WRITE_SECONDS = 300.0
#: Less free space than this on the state dir is reported as a problem.
DISK_LOW_BYTES = 16 * 1024 * 1024


class StateDirProbe:
    """Probes one state dir and keeps its "disk" problem current."""

    def __init__(self, state_dir: Path, problems: Problems) -> None:
        self.state_dir = state_dir
        self.problems = problems
        self._checked = 0.0
        self._written = 0.0

    def tick(self, now: float) -> None:
        """From the main loop: probe when due (see the module docstring)."""
        if now - self._checked < DISK_PROBE_SECONDS:
            return
        self._checked = now
        write = self.problems.active("disk") or now - self._written >= DISK_WRITE_SECONDS
        if write:
            self._written = now
        self.probe(write=write)

    def probe(self, *, write: bool = True) -> None:
        """Is the state dir (catalog, index, people) writable with room to spare? Free
        space and a read-only mount come from statvfs; with `write`, a small file is
        written and removed too (no fsync: a full disk refuses the write itself)."""
        probe = self.state_dir / ".vaultd-probe"
        try:
            st = os.statvfs(self.state_dir)
            if st.f_flag & os.ST_RDONLY:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            free = st.f_bavail * st.f_frsize
            if write:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, b"\0" * 4096)
                finally:
                    os.close(fd)
                    probe.unlink(missing_ok=True)
        except OSError as exc:
            with_path = f"state dir {self.state_dir}: {exc.strerror or exc}"
            if self.problems.report("disk", with_path, path=os.fspath(self.state_dir)):
                log.error("%s; work waits until it is writable again", with_path)
            return
        if free < DISK_LOW_BYTES:
            self.problems.report(
                "disk",
                f"state dir {self.state_dir} has only {free // 1024} KiB free",
                path=os.fspath(self.state_dir),
            )
        elif self.problems.clear("disk"):
            log.info("state dir %s is writable again", self.state_dir)
