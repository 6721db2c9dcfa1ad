"""The Unix-socket server: one thread per client, bounded, with deadlines.

Hostile or broken clients (garbage, oversized lines, a client that connects
and stalls or trickles a byte at a time) get an error reply or are dropped;
they never take the daemon or other clients down:

- each request has one deadline, `request_timeout` from the moment the server
  is ready for it (the connect, or the previous reply) to its newline; a slow
  trickle does not reset it, and an idle keep-alive connection is closed when
  it runs out;
- at most `max_clients` connections are served at once; the last
  `admin_slots` of them are kept for root and members of `admin_group`, so
  `vaultctl status` works for an administrator while others fill the rest;
- a connection over the limit is answered `busy` at once and closed (the
  client retries briefly), and the listen backlog is large enough that a
  burst of connects waits in the kernel rather than failing with EAGAIN.

The caller's uid/gid come from SO_PEERCRED so handlers can filter by the
caller's file permissions.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photovault.query.permissions import Identity
from photovault.query.protocol import ProtocolError, Request, encode_error, encode_ok, parse_request

log = logging.getLogger(__name__)

MAX_CLIENTS = 32  # connections served at once, admin slots included
ADMIN_SLOTS = 1  # of those, kept for root and the admin group
LISTEN_BACKLOG = socket.SOMAXCONN  # the kernel caps it at net.core.somaxconn
OVERFLOW_THREADS = 8  # connections past the limit checked for admin at once
BUSY_LOG_EVERY = 60.0  # seconds between "refusing clients" warnings


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


class _RequestHandler(socketserver.BaseRequestHandler):
    """Serves one connection, which already holds a slot: request lines until EOF."""

    server: QueryServer

    def handle(self) -> None:
        srv = self.server
        conn: socket.socket = self.request
        caller = peer_credentials(conn)
        buf = bytearray()
        while True:
            deadline = time.monotonic() + srv.request_timeout
            try:
                line = read_line(conn, buf, srv.max_request_bytes, deadline)
            except ProtocolError as exc:  # too large
                _send(conn, encode_error(exc.code, exc.message), srv.request_timeout)
                return
            except TimeoutError:
                if buf:  # a request was started and not finished: say why we hang up
                    msg = f"request not completed within {srv.request_timeout:g} s"
                    _send(conn, encode_error("timeout", msg), srv.request_timeout)
                return  # an idle connection is just closed
            except OSError:
                return
            if line is None:
                return
            if not _send(conn, srv.dispatch(line, caller), srv.request_timeout):
                return


def read_line(conn: socket.socket, buf: bytearray, limit: int, deadline: float) -> bytes | None:
    """The next line (with its newline) from `buf` then `conn`, complete by `deadline`.

    None at end of stream (a partial line there is dropped). Raises
    TimeoutError past the deadline however steadily bytes arrive, and
    ProtocolError("too_large") when no newline comes within `limit` bytes.
    Bytes after the newline stay in `buf` for the next call.
    """
    scanned = 0
    while True:
        nl = buf.find(b"\n", scanned, limit)
        if nl >= 0:
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            return line
        if len(buf) >= limit:
            raise ProtocolError("too_large", f"request exceeds {limit} bytes")
        scanned = len(buf)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        conn.settimeout(remaining)
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk


def _send(conn: socket.socket, data: bytes, timeout: float) -> bool:
    """Send a whole reply within `timeout` (in total); False when the client is gone."""
    try:
        conn.settimeout(timeout)
        conn.sendall(data)
    except OSError:  # BrokenPipeError, ConnectionResetError, TimeoutError
        return False
    return True


class QueryServer(socketserver.UnixStreamServer):
    allow_reuse_address = True

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        group: str | None = None,
        admin_group: str | None = None,
        request_timeout: float = 10.0,
        max_request_bytes: int = 1_048_576,
        max_clients: int = MAX_CLIENTS,
        admin_slots: int = ADMIN_SLOTS,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        if not 0 <= admin_slots < max_clients:
            raise ValueError(f"admin_slots must be from 0 to {max_clients - 1}, not {admin_slots}")
        self.path = path
        self.handler = handler
        self.admin_group = admin_group
        self.request_timeout = request_timeout
        self.max_request_bytes = max_request_bytes
        self.request_queue_size = backlog  # read by server_activate (listen)
        self._open_slots = threading.BoundedSemaphore(max_clients - admin_slots)
        self._admin_slots = threading.BoundedSemaphore(admin_slots) if admin_slots else None
        self._overflow = threading.BoundedSemaphore(OVERFLOW_THREADS)
        self._busy_logged = -BUSY_LOG_EVERY
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(path)
        super().__init__(str(path), _RequestHandler)
        os.chmod(path, 0o660)
        if group:
            try:
                os.chown(path, -1, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError) as exc:
                # Refuse to run with the socket in the wrong group (root's, say):
                # the people it was meant for could not use it, or others could.
                self.server_close()
                path.unlink(missing_ok=True)
                raise OSError(
                    f"[server] socket_group: cannot give socket {path} to group {group}: {exc}"
                ) from exc
        self._thread: threading.Thread | None = None

    # -- admission -------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Runs in the accept loop: give the connection a slot and a thread, or refuse it.

        An open slot is taken without looking at the caller. Past that, whether
        the caller may have an admin slot needs a user-database look-up, so it
        is done in a thread, at most OVERFLOW_THREADS at once; beyond those the
        connection is refused here without a look-up.
        """
        if self._open_slots.acquire(blocking=False):
            self._spawn(request, client_address, self._open_slots)
        elif self._admin_slots is not None and self._overflow.acquire(blocking=False):
            self._spawn(request, client_address, None)
        else:
            self._refuse(request)
            self.shutdown_request(request)

    def _spawn(self, request: Any, client_address: Any, slot: threading.Semaphore | None) -> None:
        t = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address, slot),
            name="query-client",
            daemon=True,
        )
        try:
            t.start()
        except BaseException:  # no thread: give back what it would have released
            (slot or self._overflow).release()
            raise

    def _serve_connection(
        self, request: Any, client_address: Any, slot: threading.Semaphore | None
    ) -> None:
        try:
            if slot is None:
                try:
                    slot = self._admin_slot_for(request)
                finally:
                    self._overflow.release()
                if slot is None:
                    self._refuse(request)
                    return
            try:
                self.finish_request(request, client_address)
            finally:
                slot.release()
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def _admin_slot_for(self, request: socket.socket) -> threading.Semaphore | None:
        """A slot for a connection that found the open ones full, or None (busy).

        The admin slot when the caller is root or in the admin group; an open
        slot when one came free meanwhile.
        """
        assert self._admin_slots is not None
        if self._open_slots.acquire(blocking=False):
            return self._open_slots
        if self.privileged(peer_credentials(request)) and self._admin_slots.acquire(blocking=False):
            return self._admin_slots
        return self._open_slots if self._open_slots.acquire(blocking=False) else None

    def privileged(self, caller: Caller) -> bool:
        if caller.uid == 0:
            return True
        if not self.admin_group:
            return False
        return Identity.of(caller.uid, caller.gid, self.admin_group).admin

    def _refuse(self, request: socket.socket) -> None:
        now = time.monotonic()
        if now - self._busy_logged >= BUSY_LOG_EVERY:
            self._busy_logged = now
            log.warning("query service full; refusing clients with 'busy'")
        try:
            request.setblocking(False)  # a fresh socket's buffer always takes one line
            request.send(encode_error("busy", "too many clients; try again"))
        except OSError:
            pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("query connection failed")

    # -- requests --------------------------------------------------------------

    def dispatch(self, line: bytes, caller: Caller) -> bytes:
        try:
            req = parse_request(line)
            return encode_ok(self.handler(req, caller))
        except ProtocolError as exc:
            return encode_error(exc.code, exc.message)
        except Exception as exc:
            # The details go to the log only: an exception's text can name
            # paths the caller may not see.
            log.exception("request failed: %r", line[:200])
            return encode_error(
                "internal", f"internal error ({type(exc).__name__}); details are in the vaultd log"
            )

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
