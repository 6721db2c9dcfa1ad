"""Request arguments: checking the values a client sent, and paths in replies.

Every handler validates its own arguments with these, so that a bad value is a
bad_request naming the argument, never an exception deep inside a stage.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from photovault.query.protocol import ProtocolError


def str_arg(args: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise ProtocolError("bad_request", f"missing argument {name!r}")
        return None
    if not isinstance(value, str) or "\0" in value or len(value) > 4096 or not bytes_ok(value):
        raise ProtocolError("bad_request", f"argument {name!r} must be a path-like string")
    return value


def bytes_ok(value: str) -> bool:
    """Whether `value` names bytes. A file name that is not UTF-8 arrives as JSON
    \\udcXX escapes (vaultctl's argv decoded with surrogateescape), which
    `os.fsencode` turns back into the same bytes; other lone surrogates name none."""
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        return False
    return True


def path_fields(path: str) -> dict[str, str]:
    """A path in a reply. "path" is a str in which bytes that are not UTF-8 are
    lone surrogates (surrogateescape): JSON carries them as \\udcXX escapes and
    Python's json reads them back exactly, so the path can be sent back as it
    came. Other JSON readers (jq) replace them, so such a path also comes as
    "path_bytes", base64 of the name's bytes; a UTF-8 name has no "path_bytes"."""
    out = {"path": path}
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        out["path_bytes"] = base64.b64encode(raw).decode("ascii")
    return out


def int_arg(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_request", f"argument {name!r} must be an integer")
    return value
