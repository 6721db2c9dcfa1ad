from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from photovault.query.client import Client, ClientError
from photovault.query.protocol import Request
from photovault.query.server import Caller, QueryServer


def echo(req: Request, caller: Caller) -> dict:
    return req.args


def fill_backlog(path: Path) -> list[socket.socket]:
    """Connect until the kernel refuses with EAGAIN (nobody accepts yet)."""
    held = []
    for _ in range(64):
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:
            s.close()
            return held
        held.append(s)
    raise AssertionError("the backlog never filled")


@pytest.fixture
def unstarted(tmp_path: Path) -> Iterator[tuple[QueryServer, list[socket.socket]]]:
    """A server with a one-connection backlog, listening but not yet accepting, backlog full."""
    srv = QueryServer(tmp_path / "s.sock", echo, request_timeout=1.0, backlog=1)
    held = fill_backlog(srv.path)
    yield srv, held
    for s in held:
        s.close()
    srv.server_close()


def test_a_call_waits_out_a_full_listen_backlog(unstarted) -> None:
    srv, _held = unstarted
    starter = threading.Timer(0.5, srv.start)
    starter.start()
    try:
        assert Client(srv.path).call("echo", x=1) == {"x": 1}
    finally:
        starter.join()
        srv.shutdown()


def test_a_call_gives_up_on_a_daemon_that_stays_busy_and_says_so(unstarted) -> None:
    srv, _held = unstarted
    t0 = time.monotonic()
    with pytest.raises(ClientError) as exc:
        Client(srv.path, retry_for=0.5).call("echo")
    assert 0.3 < time.monotonic() - t0 < 1.5
    assert exc.value.code == "busy"
    assert "busy" in exc.value.message and "gave up after 0.5 s" in exc.value.message


def test_a_call_to_a_socket_nobody_listens_on_fails_after_brief_retries(tmp_path: Path) -> None:
    p = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()  # the file stays, nobody listens: ECONNREFUSED
    t0 = time.monotonic()
    with pytest.raises(ClientError) as exc:
        Client(p, retry_for=0.3).call("echo")
    assert 0.1 < time.monotonic() - t0 < 1.0
    assert exc.value.code == "unreachable"
    assert "connection refused" in exc.value.message
