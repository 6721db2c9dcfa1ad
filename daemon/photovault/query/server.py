"""The Unix-socket server: one thread per client, bounded, with timeouts.

Hostile or broken clients (garbage, oversized lines, a client that connects
and stalls) get an error reply or are dropped after `request_timeout`; they
never take the daemon or other clients down. The caller's uid/gid come from
SO_PEERCRED so handlers can filter by the caller's file permissions.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photovault.query.protocol import ProtocolError, Request, encode_error, encode_ok, parse_request

log = logging.getLogger(__name__)

MAX_CLIENTS = 32


@dataclass(frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int


Handler = Callable[[Request, Caller], Any]


def peer_credentials(sock: socket.socket) -> Caller:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Caller(pid, uid, gid)


class _RequestHandler(socketserver.StreamRequestHandler):
    server: QueryServer

    def handle(self) -> None:
        srv = self.server
        if not srv.slots.acquire(blocking=False):
            self.wfile.write(encode_error("busy", "too many clients; try again"))
            return
        try:
            self.connection.settimeout(srv.request_timeout)
            caller = peer_credentials(self.connection)
            while True:
                try:
                    line = self.rfile.readline(srv.max_request_bytes + 1)
                except TimeoutError:
                    return
                except OSError:
                    return
                if not line:
                    return
                if len(line) > srv.max_request_bytes or not line.endswith(b"\n"):
                    if len(line) > srv.max_request_bytes:
                        self.wfile.write(
                            encode_error(
                                "too_large", f"request exceeds {srv.max_request_bytes} bytes"
                            )
                        )
                    return
                self.wfile.write(srv.dispatch(line, caller))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return
        finally:
            srv.slots.release()


class QueryServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        group: str | None = None,
        request_timeout: float = 10.0,
        max_request_bytes: int = 1_048_576,
    ) -> None:
        self.path = path
        self.handler = handler
        self.request_timeout = request_timeout
        self.max_request_bytes = max_request_bytes
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(path)
        super().__init__(str(path), _RequestHandler)
        os.chmod(path, 0o660)
        if group:
            try:
                os.chown(path, -1, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError) as exc:
                log.warning("cannot give socket %s to group %s: %s", path, group, exc)
        self._thread: threading.Thread | None = None

    def dispatch(self, line: bytes, caller: Caller) -> bytes:
        try:
            req = parse_request(line)
            return encode_ok(self.handler(req, caller))
        except ProtocolError as exc:
            return encode_error(exc.code, exc.message)
        except Exception as exc:
            log.exception("request failed: %r", line[:200])
            return encode_error("internal", f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="query", daemon=True)
        self._thread.start()
        log.info("query service listening on %s", self.path)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse to steal a live one."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise OSError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise OSError(f"{path}: another vaultd is already listening there")
