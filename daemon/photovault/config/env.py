"""Environment overrides of the settings.

`VAULT_<KEY>` for a top-level key and `VAULT_<SECTION>__<KEY>` for a key in a
table (`VAULT_THROTTLE__BATCH_SIZE=16`, `VAULT_SERVER__SOCKET=/tmp/v.sock`).
Values are read as TOML values when they parse as one (numbers, booleans,
lists) and as plain strings otherwise, then checked with the same strict types.
A `VAULT_` variable that names no setting is an error naming the variable;
`VAULT_SOCKET` and `VAULT_CONFIG` are read by the commands themselves and are
not settings.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

from pydantic import BaseModel

from photovault.config.sections import Settings

ENV_PREFIX = "VAULT_"
#: `VAULT_` variables that are not settings: vaultctl's socket, both commands' config file.
NON_SETTING_ENV = frozenset({"VAULT_SOCKET", "VAULT_CONFIG"})


def parse_env_value(raw: str) -> Any:
    """`raw` as a TOML value when it parses as one, else the string itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


#: One applied override: the variable, the key it sets (("log_level",) or
#: ("throttle", "batch_size")) and its value.
EnvOverride = tuple[str, tuple[str, ...], Any]


def _env_key(name: str) -> tuple[str, ...] | str:
    """The key a `VAULT_` variable sets, or why it sets none."""
    key = name[len(ENV_PREFIX) :].lower()
    section, nested, sub = key.partition("__")
    field = Settings.model_fields.get(section)
    if field is None:
        return "not a known setting"
    if not nested:
        return (section,)
    table = field.annotation
    if not (isinstance(table, type) and issubclass(table, BaseModel)):
        return f"not a known setting ({section} is not a table of keys)"
    if sub not in table.model_fields:
        return f"not a known setting ([{section}] has no key {json.dumps(sub)})"
    return (section, sub)


def read_env(environ: dict[str, str]) -> tuple[list[EnvOverride], list[str]]:
    """The overrides in `environ`, and one problem line per `VAULT_` variable that is none."""
    overrides: list[EnvOverride] = []
    problems: list[str] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_ENV:
            continue
        key = _env_key(name)
        if isinstance(key, str):
            problems.append(
                f"  environment variable {name}: {key}; settings are VAULT_<KEY> or "
                "VAULT_<SECTION>__<KEY>, such as VAULT_THROTTLE__BATCH_SIZE=8"
            )
        else:
            overrides.append((name, key, parse_env_value(environ[name])))
    return overrides, problems


def apply(data: dict[str, Any], overrides: list[EnvOverride]) -> dict[str, Any]:
    """A copy of `data` (the file's tables copied too) with `overrides` set."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for _name, key, value in overrides:
        if len(key) == 1:
            merged[key[0]] = value
        else:
            table = merged.setdefault(key[0], {})
            if isinstance(table, dict):  # else validation reports the section itself
                table[key[1]] = value
    return merged


def apply_env_overrides(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Return a copy of `data` with VAULT_* settings applied (see the module docstring).

    Variables that name no setting are left out here; `load` reports them.
    """
    return apply(data, read_env(environ)[0])


def source(loc: tuple[int | str, ...], overrides: list[EnvOverride]) -> str:
    """' (from environment variable X)' when an override set this key."""
    for name, key, _value in overrides:
        if tuple(loc[: len(key)]) == key:
            return f" (from environment variable {name})"
    return ""
