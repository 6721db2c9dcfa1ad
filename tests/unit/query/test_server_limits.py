"""Slow, hostile and numerous clients, with real sockets and threads."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from photovault.query.client import Client, ClientError
from photovault.query.protocol import Request
from photovault.query.server import MAX_CLIENTS, Caller, QueryServer

NOBODY, NOGROUP, DAEMON_GID = 65534, 65534, 1

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as root and nobody")


def handler(req: Request, caller: Caller):
    if req.op == "echo":
        return {"args": req.args, "uid": caller.uid}
    if req.op == "leak":
        raise FileNotFoundError(2, "No such file", "/srv/photos/alice/private.jpg")
    if req.op == "recurse":
        return handler(req, caller)
    raise AssertionError(req.op)


def serve(path: Path, **kw) -> QueryServer:
    srv = QueryServer(path, handler, **kw)
    srv.start()
    return srv


def raw(path: Path, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        return json.loads(s.makefile("rb").readline())


def connect(path: Path, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        socks.append(s)
    return socks


class Tricklers:
    """Connections that each send one space (valid JSON padding) every `every` s."""

    def __init__(self, socks: list[socket.socket], every: float = 0.2) -> None:
        self.socks = socks
        self.every = every
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for s in self.socks:
                with contextlib.suppress(OSError):  # this one was hung up on
                    s.send(b" ")
            self.stopping.wait(self.every)

    def all_hung_up_within(self, seconds: float) -> bool:
        """True when the server closes every connection within `seconds` from now."""
        end = time.monotonic() + seconds
        for s in self.socks:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                s.settimeout(left)
                try:
                    if not s.recv(4096):
                        break
                except TimeoutError:
                    return False
                except ConnectionResetError:
                    break
        return True

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for s in self.socks:
            s.close()


CONNECT_AS = """\
import os, socket, sys
path, n, uid, gid, back = sys.argv[1], *map(int, sys.argv[2:])
os.setgroups([]); os.setgid(gid); os.setuid(uid)
socks = [socket.socket(socket.AF_UNIX) for _ in range(n)]
for s in socks:
    s.connect(path)
socket.send_fds(socket.socket(fileno=back), [b"x"], [s.fileno() for s in socks])
"""


def connect_as(uid: int, gid: int, path: Path, n: int) -> list[socket.socket]:
    """`n` connections made by another process running as uid:gid, handed to us.

    The server sees uid:gid (SO_PEERCRED is fixed at connect). The helper runs
    our interpreter as root and drops privileges itself, as nobody may not
    reach the interpreter's files.
    """
    ours, theirs = socket.socketpair()
    with ours, theirs:
        cmd = [sys.executable, "-c", CONNECT_AS, str(path), str(n), str(uid), str(gid)]
        subprocess.run(
            [*cmd, str(theirs.fileno())], pass_fds=[theirs.fileno()], check=True, timeout=10
        )
        _msg, fds, _flags, _addr = socket.recv_fds(ours, 1, n)
    assert len(fds) == n
    return [socket.socket(fileno=fd) for fd in fds]


def call_as(uid: int, gid: int, path: Path) -> dict:
    """One echo request on a connection made as uid:gid."""
    (s,) = connect_as(uid, gid, path, 1)
    with s:
        s.settimeout(5)
        with contextlib.suppress(BrokenPipeError):  # told "busy" and hung up on already
            s.sendall(b'{"v": 1, "op": "echo"}\n')
        return json.loads(s.makefile("rb").readline())


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder any user can reach (pytest's tmp_path is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="pv-query-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_trickling_clients_are_hung_up_on_at_the_request_deadline(tmp_path: Path) -> None:
    srv = serve(tmp_path / "s.sock", request_timeout=1.0)
    slow = Tricklers(connect(srv.path, MAX_CLIENTS + 8))
    try:
        assert slow.all_hung_up_within(2.5)
    finally:
        slow.close()
        srv.stop()


def test_a_keep_alive_connection_trickling_its_next_request_is_hung_up_on(tmp_path: Path) -> None:
    srv = serve(tmp_path / "s.sock", request_timeout=1.0)
    (s,) = connect(srv.path, 1)
    s.sendall(b'{"v": 1, "op": "echo"}\n')
    s.settimeout(2)
    assert json.loads(s.makefile("rb").readline())["ok"] is True
    slow = Tricklers([s])
    try:
        assert slow.all_hung_up_within(2.5)
    finally:
        slow.close()
        srv.stop()


@as_root
def test_root_is_answered_at_once_while_other_users_hold_every_slot(open_dir: Path) -> None:
    srv = serve(open_dir / "s.sock", request_timeout=5.0)
    srv.path.chmod(0o666)
    try:
        slow = Tricklers(connect_as(NOBODY, NOGROUP, srv.path, MAX_CLIENTS + 8))
        time.sleep(0.3)  # all open slots held, the rest told "busy"
        t0 = time.monotonic()
        assert Client(srv.path).call("echo", x=1) == {"args": {"x": 1}, "uid": 0}
        assert time.monotonic() - t0 < 1.0  # the admin slot, not one freed by a deadline
        slow.close()
    finally:
        srv.stop()


@as_root
def test_the_reserved_slot_is_for_the_admin_group_only(open_dir: Path) -> None:
    srv = serve(open_dir / "s.sock", request_timeout=5.0, admin_group="nogroup")
    srv.path.chmod(0o666)
    try:
        slow = Tricklers(connect_as(NOBODY, DAEMON_GID, srv.path, MAX_CLIENTS + 8))
        time.sleep(0.3)
        outsider = call_as(NOBODY, DAEMON_GID, srv.path)
        assert outsider["error"]["code"] == "busy"
        member = call_as(NOBODY, NOGROUP, srv.path)  # nogroup is nobody's own group
        assert member["result"] == {"args": {}, "uid": NOBODY}
        slow.close()
    finally:
        srv.stop()


def test_a_client_gets_in_once_trickling_clients_meet_their_deadline(tmp_path: Path) -> None:
    srv = serve(tmp_path / "s.sock", request_timeout=1.0, admin_slots=0)
    slow = Tricklers(connect(srv.path, MAX_CLIENTS + 8))
    try:
        time.sleep(0.3)
        assert Client(srv.path).call("echo", x=2)["args"] == {"x": 2}
    finally:
        slow.close()
        srv.stop()


def test_a_burst_of_200_connections_is_answered_in_full(tmp_path: Path) -> None:
    srv = serve(tmp_path / "s.sock")
    n = 200
    start = threading.Barrier(n)
    errors: list[str] = []
    answered: list[int] = []

    def one(i: int) -> None:
        start.wait()
        try:
            answered.append(Client(srv.path).call("echo", i=i)["args"]["i"])
        except ClientError as exc:
            errors.append(f"{exc.code}: {exc.message}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        assert sorted(answered) == list(range(n))
    finally:
        srv.stop()


def test_deep_json_and_huge_numbers_are_bad_requests_over_the_socket(tmp_path: Path) -> None:
    srv = serve(tmp_path / "s.sock")
    try:
        deep = raw(srv.path, b"[" * 100_000 + b"\n")
        assert deep["error"]["code"] == "bad_request"
        digits = raw(srv.path, b'{"v": 1, "op": "echo", "args": {"n": ' + b"7" * 5000 + b"}}\n")
        assert digits["error"]["code"] == "bad_request"
        assert Client(srv.path).call("echo")["args"] == {}
    finally:
        srv.stop()


def test_a_crashing_handler_reply_carries_no_details_and_the_server_goes_on(
    tmp_path: Path,
) -> None:
    srv = serve(tmp_path / "s.sock")
    try:
        for op in ("leak", "recurse"):
            reply = raw(srv.path, json.dumps({"v": 1, "op": op}).encode() + b"\n")
            assert reply["error"]["code"] == "internal"
            message = reply["error"]["message"]
            assert "private.jpg" not in message and "Traceback" not in message
            assert "vaultd log" in message
        assert Client(srv.path).call("echo")["args"] == {}
    finally:
        srv.stop()
