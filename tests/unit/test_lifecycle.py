"""photovault.lifecycle: sd_notify over a real datagram socket, watchdog timing, signals."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from photovault.lifecycle import Signals, sd_notify, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_sd_notify_sends_one_datagram_to_the_notify_socket(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    assert sd_notify("READY=1\nSTATUS=scanning", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=scanning"


def test_sd_notify_reaches_an_abstract_namespace_socket() -> None:
    name = f"photovault-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(100) == b"WATCHDOG=1"


def test_sd_notify_is_a_no_op_outside_systemd() -> None:
    assert sd_notify("READY=1", {}) is False


def test_sd_notify_survives_a_socket_that_is_gone(tmp_path: Path) -> None:
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "missing")}) is False


def test_watchdog_pings_at_half_the_watchdog_period() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}) == 1.0


def test_watchdog_is_off_without_watchdog_usec_or_for_another_pid() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    other = str(os.getpid() + 1)
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": other}) is None
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}) == 1.0


def test_sigterm_and_sighup_only_set_flags_for_the_main_loop() -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    sig = Signals()
    try:
        sig.install()
        os.kill(os.getpid(), signal.SIGHUP)
        assert sig.reload.wait(2) and sig.wake.is_set() and not sig.stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert sig.stop.wait(2)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
