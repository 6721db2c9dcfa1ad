"""The client side of the protocol, used by vaultctl and the tests."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from photovault.query.protocol import encode_request


class ClientError(Exception):
    """The daemon answered with an error, or could not be reached."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Client:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, op: str, **args: Any) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except FileNotFoundError as exc:
                raise ClientError(
                    "unreachable", f"{self.path}: no such socket (is vaultd running?)"
                ) from exc
            except OSError as exc:
                raise ClientError("unreachable", f"{self.path}: {exc.strerror or exc}") from exc
            sock.sendall(encode_request(op, args))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError as exc:
            raise ClientError("timeout", f"no answer from vaultd within {self.timeout}s") from exc
        finally:
            sock.close()
        if not buf:
            raise ClientError("unreachable", "vaultd closed the connection without answering")
        reply = json.loads(buf)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise ClientError(err.get("code", "error"), err.get("message", "unknown error"))
        return reply.get("result")
