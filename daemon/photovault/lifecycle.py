"""Signals and systemd notification.

SIGTERM/SIGINT ask for a drain-and-exit, SIGHUP for a config reload. The
handlers only set flags; the main loop acts on them, so no lock is ever taken
inside a signal handler. `sd_notify` speaks systemd's notify protocol
directly (one datagram to $NOTIFY_SOCKET), so no libsystemd binding is needed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

log = logging.getLogger(__name__)


def sd_notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send one notification ("READY=1", "STATUS=...", "WATCHDOG=1") if under systemd."""
    env = os.environ if environ is None else environ
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify(%s) failed: %s", message, exc)
        return False


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when not asked."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6


class Signals:
    """Flags set by signal handlers, read by the main loop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop.set()
        self.wake.set()

    def _on_reload(self, signum: int, frame: object) -> None:
        self.reload.set()
        self.wake.set()
