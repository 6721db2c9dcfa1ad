"""What every vaultctl command shares: exit codes, the socket and the configuration.

The socket comes from `--socket`, else $VAULT_SOCKET, else the `[server]
socket` of the config (`--config`, else $VAULT_CONFIG, else the default).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from photovault import DEFAULT_CONFIG_PATH
from photovault.query.client import ClientError

EXIT_OK, EXIT_NONE, EXIT_ERROR = 0, 1, 2


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    if os.environ.get("VAULT_SOCKET"):
        return Path(os.environ["VAULT_SOCKET"])
    return load_settings(args).server.socket


def load_settings(args: argparse.Namespace) -> Any:
    """The configuration, loaded only when needed: pydantic costs vaultctl ~0.1 s
    (an error in it is reported like any other, naming the file and key)."""
    from photovault.config import ConfigError, load

    cfg = Path(args.config or os.environ.get("VAULT_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        return load(cfg, check_paths=False)
    except ConfigError as exc:
        raise ClientError("config", str(exc)) from exc
