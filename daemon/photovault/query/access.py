"""What every handler needs: the service, who the caller is, what they may read.

Handlers are split by job (show.py, search_handlers.py, handlers.py); this base
holds what they share: mapping a client's path onto a share and refusing a
photo the caller could not open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from photovault.catalog.store import FileRow
from photovault.query.args import str_arg
from photovault.query.permissions import Identity
from photovault.query.protocol import ProtocolError
from photovault.query.server import Caller
from photovault.query.service import VaultService


class HandlerBase:
    """The service and the caller checks that every handler uses."""

    def __init__(self, vault: VaultService, geocoder: Any = None) -> None:
        #: The running daemon, seen through what the handlers need (query/service.py).
        self.vault = vault
        #: Finds places by name for `near` (geo.places.Geocoder); None: the
        #: process's one, loaded on the first such search.
        self.geocoder = geocoder

    def _share_arg(self, args: dict[str, Any]) -> str | None:
        share = str_arg(args, "share", required=False)
        if share is not None and self.vault.settings.share(share) is None:
            raise ProtocolError("not_found", f"no share named {share!r}")
        return share

    def locate(self, raw: str) -> tuple[str, str]:
        """Absolute path -> (share, relpath), or a not_found error."""
        if not os.path.isabs(raw):
            raise ProtocolError("bad_request", "path must be absolute")
        p = os.path.normpath(raw)
        for share in self.vault.settings.shares:
            for root in {os.path.normpath(share.path), os.path.realpath(share.path)}:
                if p.startswith(root + os.sep):
                    return share.name, p[len(root) + 1 :]
        raise ProtocolError("not_found", f"{raw} is not inside any watched share")

    def _row(self, args: dict[str, Any], caller: Caller) -> tuple[str, str, FileRow]:
        """The catalogued photo at args["path"], if this caller may open it."""
        share, rel, row = self._row_any(args)
        allowed = self._allowed(caller)
        path = self.vault.resolve(row.share, row.relpath)
        if allowed is not None and (path is None or not allowed(os.fspath(path))):
            raise ProtocolError("not_found", "no such photo")  # not even that it exists
        return share, rel, row

    def _row_any(self, args: dict[str, Any]) -> tuple[str, str, FileRow]:
        raw = str_arg(args, "path")
        assert raw is not None
        share, rel = self.locate(raw)
        row = self.vault.catalog.get(share, rel)
        if row is None:
            raise ProtocolError(
                "not_found", f"{raw} is not in the catalog (not a photo, ignored, or not seen yet)"
            )
        return share, rel, row

    def _identity(self, caller: Caller) -> Identity:
        return Identity.of(caller.uid, caller.gid, self.vault.settings.server.admin_group)

    def _allowed(self, caller: Caller) -> Any:
        """Predicate on absolute paths: what this caller could open (None: everything)."""
        ident = self._identity(caller)
        if ident.admin:
            return None
        roots = [(os.fspath(s.path) + os.sep, s.path) for s in self.vault.settings.shares]

        def allowed(abs_path: str) -> bool:
            for prefix, root in roots:
                if abs_path.startswith(prefix):
                    return ident.can_read(Path(abs_path), root)
            return False

        return allowed
