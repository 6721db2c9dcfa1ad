"""systemd/vaultd.service as systemd reads it, and vaultd's notify protocol as systemd sees it.

The unit is checked by the real `systemd-analyze verify` inside a throwaway
root (so the ExecStart path can exist without installing anything), and the
notify behaviour against a real NOTIFY_SOCKET datagram listener bound by the
test, with a real vaultd subprocess on the other end.
"""

from __future__ import annotations

import itertools
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.photos import write_jpeg
from helpers.vault import REPO, VaultProcess, write_config

UNIT = REPO / "systemd" / "vaultd.service"
EXEC_START = "/opt/photovault/venv/bin/vaultd"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return exe


def make_root(root: Path, unit_text: str) -> Path:
    """A minimal root: our unit, the stock targets it orders against, stub binaries."""
    unit = root / "etc/systemd/system/vaultd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text)
    if SYSTEM_UNITS.is_dir():
        shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for stub in (EXEC_START, "/bin/kill"):
        path = root / stub.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return unit


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", f"--root={root}", "/etc/systemd/system/vaultd.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def verified_root(tmp_path: Path) -> Path:
    """Skip (only) when systemd-analyze cannot verify even a trivial unit here."""
    probe = tmp_path / "probe"
    make_root(probe, "[Service]\nType=simple\nExecStart=/bin/kill\n")
    if verify(probe).returncode != 0 or not SYSTEM_UNITS.is_dir():
        pytest.skip(f"systemd-analyze verify cannot run here: {verify(probe).stderr.strip()}")
    root = tmp_path / "root"
    make_root(root, UNIT.read_text())
    return root


def test_the_unit_passes_systemd_analyze_verify_without_a_single_warning(
    verified_root: Path,
) -> None:
    result = verify(verified_root)
    # verify exits 0 on unknown keys or bad values and only prints them, so
    # silence is the criterion.
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", (
        result.stderr + result.stdout
    )


def test_verify_would_catch_a_mistyped_directive(tmp_path: Path, verified_root: Path) -> None:
    broken = tmp_path / "broken"
    make_root(broken, UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=stirct"))
    assert "ProtectSystem" in verify(broken).stderr or "protect system" in verify(broken).stderr


def test_the_unit_exposure_level_stays_low(verified_root: Path) -> None:
    result = subprocess.run(
        [
            analyze(),
            "security",
            "--offline=true",
            f"--root={verified_root}",
            "--no-pager",
            "/etc/systemd/system/vaultd.service",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for vaultd\.service: ([0-9.]+)", result.stdout)
    if m is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {result.stderr.strip()}")
    assert float(m.group(1)) <= 2.5, result.stdout


def service_lines() -> list[str]:
    text = UNIT.read_text()
    return text[text.index("[Service]") : text.index("[Install]")].splitlines()


def test_every_hardening_and_priority_line_carries_its_own_comment() -> None:
    lines = service_lines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# -- low priority"))
    uncommented = [
        line
        for prev, line in zip(lines[start:], lines[start + 1 :], strict=False)
        if line and not line.startswith("#") and not prev.startswith("#")
    ]
    assert uncommented == []


def test_the_unit_is_a_watchdogged_notify_service_running_the_venv_vaultd() -> None:
    d: dict[str, list[str]] = {}
    for line in service_lines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            d.setdefault(k, []).append(v)
    assert d["Type"] == ["notify"]
    assert d["ExecStart"] == [f"{EXEC_START} --config /etc/photovault/vaultd.toml"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(d["WatchdogSec"][0]) > 0 and d["Restart"] == ["on-failure"]
    assert d["User"] == ["vault"] and d["RuntimeDirectory"] == ["photovault"]
    assert d["StateDirectory"] == ["photovault"] and d["ProtectSystem"] == ["strict"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert d["SystemCallFilter"] == ["@system-service"]
    assert d["CPUSchedulingPolicy"] == ["batch"]


# -- the notify protocol, end to end ------------------------------------------------------


class NotifyListener:
    """What systemd does with NOTIFY_SOCKET: bind a datagram socket, stamp each message.

    A thread receives continuously, so a message's time is when it arrived,
    not when the test got round to reading it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, field: str, timeout: float, count: int = 1) -> list[float]:
        """Arrival times of the messages containing the line `field` (at least `count`)."""
        deadline = time.monotonic() + timeout
        while True:
            times = [t for t, m in list(self.messages) if field in m.splitlines()]
            if len(times) >= count or time.monotonic() > deadline:
                return times
            time.sleep(0.05)

    def lines(self, prefix: str) -> list[str]:
        return [
            line
            for _t, m in list(self.messages)
            for line in m.splitlines()
            if line.startswith(prefix)
        ]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def test_vaultd_speaks_ready_status_watchdog_and_stopping_to_a_real_notify_socket(
    tmp_path: Path,
    notify: NotifyListener,
) -> None:
    write_jpeg(tmp_path / "photos" / "a.jpg", 1)
    vault = VaultProcess(write_config(tmp_path), tmp_path)
    vault.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"})
    try:
        assert notify.wait_for("READY=1", 10), f"no READY=1; got {notify.messages}"
        assert notify.lines("STATUS="), "READY=1 came without a STATUS= line"
        pings = notify.wait_for("WATCHDOG=1", 12, count=4)
        assert len(pings) >= 4, f"watchdog pings {pings}; log:\n{vault.log()[-2000:]}"
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # WatchdogSec=2 s: pings must come well inside it, and not in a flood.
        assert max(gaps) < 2.0 and min(gaps) > 0.3, gaps
        assert any("queue" in s for s in notify.lines("STATUS=")[1:]), notify.lines("STATUS=")
        vault.wait_idle(expect_done=1)
        vault.signal(signal.SIGTERM)
        assert vault.proc is not None and vault.proc.wait(20) == 0
        assert notify.wait_for("STOPPING=1", 2), notify.messages
        ready = notify.wait_for("READY=1", 0)[0]
        stopping = notify.wait_for("STOPPING=1", 0)[0]
        assert ready < pings[0] and pings[-1] < stopping
    finally:
        vault.stop()


def test_vaultd_without_notify_socket_runs_and_stops_as_before(tmp_path: Path) -> None:
    vault = VaultProcess(write_config(tmp_path), tmp_path)
    vault.start(env={"WATCHDOG_USEC": "2000000"})
    assert vault.stop() == 0
