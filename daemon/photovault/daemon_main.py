"""`vaultd --config FILE`: the daemon's entry point (outside cli/, which is vaultctl's):
run in the foreground, logging to stderr."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from photovault import (
    __version__,
    _blas,  # noqa: F401  (before numpy loads)
)
from photovault.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load


def _config_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("VAULT_CONFIG") or DEFAULT_CONFIG_PATH)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        force=True,
    )
    # Third-party chatter would drown our one-line-per-event log.
    for noisy in ("apscheduler", "watchdog", "PIL", "exiftool", "lancedb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vaultd", description="Photo Vault daemon")
    parser.add_argument(
        "--config", "-c", help=f"TOML config (default {DEFAULT_CONFIG_PATH}, or $VAULT_CONFIG)"
    )
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--version", action="version", version=f"vaultd {__version__}")
    args = parser.parse_args(argv)
    path = _config_path(args.config)

    def load_config() -> Settings:
        # `--check` finds typos; a real start (or reload) takes a share folder that
        # does not exist for an outage (a disk not mounted yet): reported, waited for.
        return load(path, missing_shares_ok=not args.check)

    try:
        settings = load_config()
    except ConfigError as exc:
        print(f"vaultd: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{path}: OK ({len(settings.shares)} shares)")
        return 0
    setup_logging(settings.log_level)

    from photovault.app import run
    from photovault.lifecycle import Signals
    from photovault.versioning import StoreVersionError

    signals = Signals()
    signals.install()
    try:
        return run(settings, signals, config_path=path, load_config=load_config)
    except StoreVersionError as exc:  # catalog, people or index of a newer photovault
        logging.getLogger("vaultd").error("%s", exc)
        return 3
    except OSError as exc:
        logging.getLogger("vaultd").error("cannot start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
