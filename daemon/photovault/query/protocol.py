"""The query protocol: JSON lines over a Unix socket.

One request per line, one reply per line:

    -> {"v": 1, "op": "status", "args": {}}
    <- {"v": 1, "ok": true, "result": {...}}
    <- {"v": 1, "ok": false, "error": {"code": "bad_request", "message": "..."}}

Versioned so an older vaultctl talking to a newer vaultd (or the reverse)
gets a clear error instead of a misread reply. A client may send several
requests on one connection.

Anything a request can do to the parser (a line that is not JSON, JSON nested
thousands deep, a number with thousands of digits) is a `bad_request` with a
message for people, never an internal error: requests come from any local
user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VERSION = 1
MAX_DEPTH = 32  # nesting of objects and arrays; real requests use 4 at most
MAX_INT_DIGITS = 100  # Python's own limit (4300) raises ValueError, mid-parse


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
        obj = json.loads(line, parse_int=_parse_int)
    except RecursionError as exc:
        raise ProtocolError("bad_request", f"request nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ProtocolError("bad_request", f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", "a request must be a JSON object")
    if _depth_exceeds(obj, MAX_DEPTH):
        raise ProtocolError("bad_request", f"request nested deeper than {MAX_DEPTH}")
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


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError(
            "bad_request", f"a number in the request has more than {MAX_INT_DIGITS} digits"
        )
    return int(text)


def _depth_exceeds(obj: Any, limit: int) -> bool:
    """True when `obj` nests objects/arrays more than `limit` deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


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
