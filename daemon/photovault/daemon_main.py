"""`vaultd --config FILE`: the daemon's entry point (outside cli/, which is vaultctl's).

Runs in the foreground, logging to stderr: builds the `Daemon` (app.py), waiting
while the state disk cannot be written, and runs the main loop (signals, reload,
health, the systemd watchdog) until a stop signal."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photovault import (
    __version__,
    _blas,  # noqa: F401  (before numpy loads)
)
from photovault._nopandas import load_pyarrow_without_pandas
from photovault.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load
from photovault.lifecycle import sd_notify, watchdog_interval
from photovault.memory import fix_mmap_threshold


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


log = logging.getLogger("vaultd")

#: How often a start that found its state disk unwritable tries again.
STATE_RETRY_SECONDS = 5.0
STATE_FAULT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


def _state_fault(exc: BaseException) -> bool:
    """A full, read-only or failing state disk (not a bug, not a bad config)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "disk" in text or "readonly" in text or "read-only" in text
    return isinstance(exc, OSError) and exc.errno in STATE_FAULT_ERRNOS


def _open_when_writable(
    settings: Settings, signals: Any, config_path: Path | None, ping_every: float | None
) -> Any:
    """Build the daemon; while its state disk cannot be written (full at boot), wait
    and say why (log, systemd STATUS) instead of exiting into a restart loop, and
    go on by itself when space returns. None when asked to stop meanwhile."""
    said = False
    while True:
        try:
            from photovault.app import Daemon

            return Daemon(settings, config_path=config_path)
        except Exception as exc:
            if not _state_fault(exc):
                raise
            why = f"state dir {settings.state_dir} cannot be written: {exc}"
            if not said:
                log.error("%s; waiting until it can (vaultd starts by itself then)", why)
                said = True
            # READY so systemd's start timeout does not kill us; STATUS says why.
            sd_notify(f"READY=1\nSTATUS=waiting: {why}" + ("\nWATCHDOG=1" if ping_every else ""))
        if signals.stop.wait(STATE_RETRY_SECONDS):
            return None


def run(
    settings: Settings,
    signals: Any,
    *,
    config_path: Path | None = None,
    load_config: Callable[[], Settings] | None = None,
) -> int:
    """Run the daemon until a stop signal; returns the exit code."""
    ping_every = watchdog_interval()
    daemon = _open_when_writable(settings, signals, config_path, ping_every)
    if daemon is None:
        return 0
    daemon.start()
    sd_notify("READY=1\nSTATUS=scanning shares")
    last_ping = 0.0
    try:
        while not signals.stop.is_set():
            signals.wake.wait(1.0)
            signals.wake.clear()
            if signals.reload.is_set():
                signals.reload.clear()
                if load_config is not None:
                    try:
                        daemon.reload(load_config())
                    except Exception as exc:
                        log.error("reload refused, keeping the running configuration: %s", exc)
            daemon.tick()
            if ping_every and time.monotonic() - last_ping >= ping_every and daemon.healthy():
                st = daemon.status()
                sd_notify(
                    f"WATCHDOG=1\nSTATUS=queue {st['queue_depth']}, {st['rate_per_second']} img/s"
                )
                last_ping = time.monotonic()
    finally:
        sd_notify("STOPPING=1")
        daemon.stop()
    return 0


def prepare_process() -> None:
    """What vaultd's process needs before the daemon allocates anything large: the
    heap that hands unloaded data back (memory.py), pyarrow without pandas."""
    fix_mmap_threshold()
    load_pyarrow_without_pandas()


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
    prepare_process()

    from photovault.lifecycle import Signals
    from photovault.versioning import StoreVersionError

    signals = Signals()
    signals.install()
    try:
        return run(settings, signals, config_path=path, load_config=load_config)
    except StoreVersionError as exc:  # catalog, people or index of a newer photovault
        log.error("%s", exc)
        return 3
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
