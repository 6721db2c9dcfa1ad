"""Value types the settings share: paths read from TOML strings, cron expressions,
and how a value the TOML reader gave is named in an error message."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator


def describe(value: object) -> str:
    """A value as the TOML reader gave it, for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {json.dumps(shown)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return f"the date/time {value.isoformat()}"
    return type(value).__name__


def _to_path(value: object) -> object:
    """Paths are TOML strings; strict mode alone would want a Path object."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a path (a string), got {describe(value)}")
    if not value:
        raise ValueError("expected a path, got an empty string")
    return Path(value)


ConfigPath = Annotated[Path, BeforeValidator(_to_path)]


def check_cron(value: str, *, allow_empty: bool) -> str:
    """`value` when it is a cron expression (or empty, with `allow_empty`)."""
    if not value and allow_empty:
        return value
    from apscheduler.triggers.cron import CronTrigger  # here: vaultctl rarely needs it

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(
            f"not a cron expression ({exc}); expected 5 fields like '0 3 * * *'"
        ) from exc
    return value
