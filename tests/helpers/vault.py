"""Run the real vaultd in a subprocess and talk to it through the real socket."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def write_config(
    base: Path,
    *,
    shares: list[dict[str, Any]] | None = None,
    settle: float = 0.5,
    analyzers: list[str] | None = None,
    extra: str = "",
    socket_group: str | None = None,
    batch_size: int = 8,
    decode_workers: int = 2,
    rescan: str = "0 3 * * *",
) -> Path:
    """A config with one share `photos` under base unless shares are given."""
    if shares is None:
        (base / "photos").mkdir(exist_ok=True)
        shares = [{"name": "photos", "path": str(base / "photos")}]
    lines = [
        f'state_dir = "{base / "state"}"',
        'log_level = "DEBUG"',
        "[server]",
        f'socket = "{base / "vaultd.sock"}"',
        "request_timeout_seconds = 2.0",
        *([f'socket_group = "{socket_group}"'] if socket_group else []),
        "[metrics]",
        'listen = ""',
        "[ingest]",
        f"settle_seconds = {settle}",
        f"open_timeout_seconds = {max(settle * 4, 2)}",
        f'rescan = "{rescan}"',
        "poll_interval_seconds = 0.5",
        "[throttle]",
        f"batch_size = {batch_size}",
        f"decode_workers = {decode_workers}",
        "[analyzers]",
        f"enabled = {json.dumps(analyzers or ['metadata'])}",
    ]
    for sh in shares:
        lines.append("[[shares]]")
        for k, v in sh.items():
            lines.append(f"{k} = {json.dumps(v)}")
    cfg = base / "vaultd.toml"
    cfg.write_text("\n".join(lines) + "\n" + extra)
    return cfg


class VaultProcess:
    """One vaultd subprocess; logs go to base/vaultd.log."""

    def __init__(self, config: Path, base: Path, *, wrapper: list[str] | None = None) -> None:
        self.config = config
        self.base = base
        self.socket = base / "vaultd.sock"
        self.log_path = base / "vaultd.log"
        self.wrapper = wrapper or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> None:
        """`env`: extra variables for the daemon (NOTIFY_SOCKET, WATCHDOG_USEC ...)."""
        child_env = dict(os.environ)
        child_env.pop("VAULT_SOCKET", None)
        child_env.update(env or {})
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "photovault.daemon_main",
                "--config",
                str(self.config),
            ],
            stdout=log,
            stderr=log,
            env=child_env,
        )
        self.wait_for(
            lambda: self.socket.exists() and self._ping(), timeout, "vaultd did not open its socket"
        )

    def _ping(self) -> bool:
        # status exits 1 while there are problems: that is an answer too.
        return self.ctl("status", "--json", check=False).returncode in (0, 1)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "photovault.cli.vaultctl", "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def status(self) -> dict[str, Any]:
        r = self.ctl("status", "--json", check=False)
        if r.returncode not in (0, 1):  # 1: answered, with problems listed
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
        return json.loads(r.stdout)

    def show(self, path: Path) -> dict[str, Any]:
        return json.loads(self.ctl("show", str(path), "--json").stdout)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            f"file:{self.base / 'state' / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=10
        )
        conn.row_factory = sqlite3.Row
        return conn

    def counts(self, share: str = "photos") -> dict[str, int]:
        for sh in self.status()["shares"]:
            if sh["name"] == share:
                return sh["counts"]
        raise KeyError(share)

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"vaultd exited with {self.proc.returncode}:\n{self.log()}")
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError(f"{what} within {timeout}s; log tail:\n{self.log()[-4000:]}")

    def wait_idle(
        self, share: str = "photos", expect_done: int | None = None, timeout: float = 60.0
    ) -> dict[str, int]:
        """Until nothing is queued or settling (and `expect_done` files are done)."""
        state: dict[str, Any] = {}

        def idle() -> bool:
            st = self.status()
            state["st"] = st
            c = next(s["counts"] for s in st["shares"] if s["name"] == share)
            if st["queue_depth"] or st["settling"] or st["scanning"] or st.get("index_pending"):
                return False
            return expect_done is None or c["done"] == expect_done

        self.wait_for(
            idle, timeout, f"share {share} did not become idle (expect_done={expect_done})"
        )
        return next(s["counts"] for s in state["st"]["shares"] if s["name"] == share)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
