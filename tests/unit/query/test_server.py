from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from photovault.query.client import Client, ClientError
from photovault.query.protocol import ProtocolError, Request
from photovault.query.server import Caller, QueryServer


def handler(req: Request, caller: Caller):
    if req.op == "echo":
        return {"args": req.args, "uid": caller.uid}
    if req.op == "boom":
        raise RuntimeError("kaput")
    raise ProtocolError("unknown_op", f"unknown operation {req.op!r}")


@pytest.fixture
def server(tmp_path: Path):
    srv = QueryServer(tmp_path / "s.sock", handler, request_timeout=0.5, max_request_bytes=1000)
    srv.start()
    yield srv
    srv.stop()


def raw(path: Path, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        return json.loads(s.makefile("rb").readline())


def test_a_request_is_answered_with_the_callers_uid(server: QueryServer) -> None:
    assert Client(server.path).call("echo", x=1) == {"args": {"x": 1}, "uid": os.geteuid()}


def test_the_socket_is_group_accessible_only(server: QueryServer) -> None:
    assert server.path.stat().st_mode & 0o777 == 0o660


def test_garbage_gets_a_bad_request_reply(server: QueryServer) -> None:
    reply = raw(server.path, b"\xff\xfenot json\n")
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"


def test_a_wrong_protocol_version_is_named(server: QueryServer) -> None:
    reply = raw(server.path, b'{"v": 99, "op": "echo"}\n')
    assert reply["error"]["code"] == "bad_version"


def test_an_oversized_request_is_refused(server: QueryServer) -> None:
    reply = raw(server.path, b'{"v":1,"op":"echo","args":{"x":"' + b"a" * 5000 + b'"}}\n')
    assert reply["error"]["code"] == "too_large"


def test_unknown_operations_and_handler_crashes_are_errors_not_outages(server: QueryServer) -> None:
    with pytest.raises(ClientError) as exc:
        Client(server.path).call("nope")
    assert exc.value.code == "unknown_op"
    with pytest.raises(ClientError) as exc:
        Client(server.path).call("boom")
    assert exc.value.code == "internal"
    assert Client(server.path).call("echo")["args"] == {}


def test_a_stalled_client_is_dropped_while_others_are_served(server: QueryServer) -> None:
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(str(server.path))
    stalled.sendall(b'{"v": 1, "op": "ec')  # and never finishes
    t0 = time.monotonic()
    assert Client(server.path).call("echo", y=2)["args"] == {"y": 2}
    assert time.monotonic() - t0 < 1.0
    stalled.settimeout(3)
    reply = json.loads(stalled.makefile("rb").readline())  # told why, after request_timeout
    assert reply["error"]["code"] == "timeout"
    assert stalled.recv(100) == b""  # and hung up on
    stalled.close()


def test_a_second_server_refuses_to_steal_a_live_socket(server: QueryServer) -> None:
    with pytest.raises(OSError, match="already listening"):
        QueryServer(server.path, handler)


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    p = tmp_path / "old.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()  # file remains, nobody listens
    srv = QueryServer(p, handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert Client(p).call("echo")["args"] == {}
    finally:
        srv.stop()


def test_a_socket_group_that_does_not_exist_refuses_to_start_and_leaves_no_socket(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sock"
    with pytest.raises(OSError, match=r"\[server\] socket_group.*no-such-group-pv"):
        QueryServer(path, handler, group="no-such-group-pv")
    assert not path.exists()
