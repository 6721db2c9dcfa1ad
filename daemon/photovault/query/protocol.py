"""The query protocol: JSON lines over a Unix socket.

One request per line, one reply per line:

    -> {"v": 1, "op": "status", "args": {}}
    <- {"v": 1, "ok": true, "result": {...}}
    <- {"v": 1, "ok": false, "error": {"code": "bad_request", "message": "..."}}

Versioned so an older vaultctl talking to a newer vaultd (or the reverse)
gets a clear error instead of a misread reply. A client may send several
requests on one connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VERSION = 1


class ProtocolError(Exception):
    """A request we refuse; `code` is machine-readable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    op: str
    args: dict[str, Any]


def parse_request(line: bytes) -> Request:
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("bad_request", f"not a JSON object: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", "a request must be a JSON object")
    v = obj.get("v")
    if v != VERSION:
        raise ProtocolError("bad_version", f"protocol version {v!r} not supported (need {VERSION})")
    op = obj.get("op")
    if not isinstance(op, str) or not op:
        raise ProtocolError("bad_request", "missing 'op'")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("bad_request", "'args' must be an object")
    return Request(op, args)


def encode_request(op: str, args: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"v": VERSION, "op": op, "args": args or {}}).encode() + b"\n"


def encode_ok(result: Any) -> bytes:
    return json.dumps({"v": VERSION, "ok": True, "result": result}).encode() + b"\n"


def encode_error(code: str, message: str) -> bytes:
    return (
        json.dumps(
            {"v": VERSION, "ok": False, "error": {"code": code, "message": message}}
        ).encode()
        + b"\n"
    )
