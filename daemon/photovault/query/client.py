"""The client side of the protocol, used by vaultctl and the tests.

A daemon that is full (its listen backlog, EAGAIN, or every slot, a `busy`
reply) or restarting (connection refused) is retried for `retry_for` seconds
with short, jittered, growing pauses; then the call fails with a message that
says so. A request is only sent again when the daemon cannot have run it.
"""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path
from typing import Any

from photovault.query.protocol import encode_request

RETRY_FOR = 3.0  # seconds a call keeps trying a busy daemon
FIRST_PAUSE = 0.02  # seconds; doubles up to MAX_PAUSE
MAX_PAUSE = 0.5


class ClientError(Exception):
    """The daemon answered with an error, or could not be reached."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _TryAgain(Exception):
    """The daemon did not take the request; it is safe to send it again."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Client:
    def __init__(self, path: Path, timeout: float = 30.0, retry_for: float = RETRY_FOR) -> None:
        self.path = path
        self.timeout = timeout
        self.retry_for = retry_for

    def call(self, op: str, **args: Any) -> Any:
        payload = encode_request(op, args)
        give_up = time.monotonic() + self.retry_for
        pause = FIRST_PAUSE
        while True:
            try:
                reply = self._exchange(payload)
            except _TryAgain as exc:
                left = give_up - time.monotonic()
                if left <= 0:
                    raise ClientError(
                        exc.code, f"{exc.reason}; gave up after {self.retry_for:g} s"
                    ) from None
                # jittered, so that a burst of clients does not come back as one
                time.sleep(min(left, pause * random.uniform(0.5, 1.0)))
                pause = min(pause * 2, MAX_PAUSE)
                continue
            if not reply.get("ok"):
                err = reply.get("error") or {}
                raise ClientError(err.get("code", "error"), err.get("message", "unknown error"))
            return reply.get("result")

    def _exchange(self, payload: bytes) -> dict[str, Any]:
        """One connection, one request, one reply (parsed)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)  # also makes a full backlog EAGAIN, not a hang
        try:
            try:
                sock.connect(str(self.path))
            except FileNotFoundError as exc:
                raise ClientError(
                    "unreachable", f"{self.path}: no such socket (is vaultd running?)"
                ) from exc
            except BlockingIOError as exc:  # EAGAIN: the listen backlog is full
                raise _TryAgain("busy", f"vaultd at {self.path} is busy (backlog full)") from exc
            except ConnectionRefusedError as exc:
                raise _TryAgain(
                    "unreachable", f"{self.path}: connection refused (is vaultd running?)"
                ) from exc
            except OSError as exc:
                raise ClientError("unreachable", f"{self.path}: {exc.strerror or exc}") from exc
            sent = True
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                sent = False  # a daemon that refuses us hangs up; its reason may be waiting
            buf = b""
            try:
                while not buf.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            except ConnectionResetError:
                pass
        except TimeoutError as exc:
            raise ClientError("timeout", f"no answer from vaultd within {self.timeout}s") from exc
        finally:
            sock.close()
        if not buf.endswith(b"\n"):
            if not sent:
                raise _TryAgain("unreachable", "vaultd closed the connection before the request")
            raise ClientError("unreachable", "vaultd closed the connection without answering")
        try:
            reply = json.loads(buf)
        except ValueError as exc:
            raise ClientError("bad_reply", f"vaultd sent a reply that is not JSON: {exc}") from exc
        if not isinstance(reply, dict):
            raise ClientError("bad_reply", "vaultd sent a reply that is not a JSON object")
        err = reply.get("error")
        if isinstance(err, dict) and err.get("code") == "busy":
            raise _TryAgain("busy", f"vaultd at {self.path} is busy (all client slots taken)")
        return reply
