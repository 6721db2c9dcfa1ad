"""Reading the configuration: the TOML file, the environment's overrides, the
strict validation and the machine checks, every problem reported at once in a
message that names the file, the key and the reason."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from photovault.config.checks import setting_problems
from photovault.config.env import EnvOverride, apply, parse_env_value, read_env, source
from photovault.config.fields import describe
from photovault.config.sections import Settings


class ConfigError(Exception):
    """The configuration cannot be used; the message names file, key and reason."""


#: What a strict type error expected, by pydantic error type.
_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
}
#: Pydantic errors about a value of the right type; the message gets the value added.
_OUT_OF_RANGE = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "literal_error",
        "string_too_short",
        "string_pattern_mismatch",
    }
)


def _unquoted_fits(kind: str, value: str) -> bool:
    """True when `value` written without quotes would have the expected type."""
    parsed = parse_env_value(value)
    if kind == "bool_type":
        return isinstance(parsed, bool)
    if kind == "int_type":
        return isinstance(parsed, int) and not isinstance(parsed, bool)
    if kind == "float_type":
        return isinstance(parsed, int | float) and not isinstance(parsed, bool)
    return kind == "list_type" and isinstance(parsed, list)


def _reason(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in _EXPECTED:
        value = err.get("input")
        reason = f"expected {_EXPECTED[kind]}, got {describe(value)}"
        if isinstance(value, str) and _unquoted_fits(kind, value):
            reason += " (write it without quotes)"
        return reason
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind in _OUT_OF_RANGE:
        message += f", got {describe(err.get('input'))}"
    return message


def _key_name(loc: tuple[int | str, ...]) -> str:
    """A key as the file spells it: state_dir, [throttle] batch_size, [[shares]] #2 path."""
    if not loc:
        return "(top level)"
    head, rest = str(loc[0]), list(loc[1:])
    if rest and isinstance(rest[0], int):
        head = f"[[{head}]] #{int(rest.pop(0)) + 1}"
    elif rest:
        head = f"[{head}]"
    words = [head] + [f"item {p + 1}" if isinstance(p, int) else str(p) for p in rest]
    return " ".join(words)


def _validation_problems(exc: ValidationError, overrides: list[EnvOverride]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        lines.append(f"  {_key_name(loc)}{source(loc, overrides)}: {_reason(err)}")
    return lines


def _resolve_relative(settings: Settings, base: Path) -> Settings:
    """Relative paths in the file are relative to the file's folder, not the cwd."""

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    settings.state_dir = fix(settings.state_dir)
    settings.server.socket = fix(settings.server.socket)
    for share in settings.shares:
        share.path = fix(share.path)
    return settings


def load(
    path: Path,
    environ: dict[str, str] | None = None,
    *,
    check_paths: bool = True,
    missing_shares_ok: bool = False,
) -> Settings:
    """Read, merge env overrides, validate. Raises ConfigError naming file and key.

    `check_paths` also checks the machine: share folders, `state_dir`, the socket
    and admin groups (vaultctl, which only needs the socket path, skips it).
    `missing_shares_ok` (a real start or reload of vaultd, not `vaultd --check`)
    takes a share folder that does not exist for an outage, not an error: after
    a reboot its disk may not be mounted yet, and the daemon reports and waits.
    """
    environ = dict(os.environ) if environ is None else environ
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    overrides, env_problems = read_env(environ)
    data = apply(data, overrides)
    try:
        settings = Settings.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = [*_validation_problems(exc, overrides), *env_problems]
        raise ConfigError("\n".join([f"{path}: invalid configuration", *problems])) from exc
    settings = _resolve_relative(settings, path.resolve().parent)
    problems = [
        *setting_problems(
            settings, overrides, check_paths=check_paths, missing_shares_ok=missing_shares_ok
        ),
        *env_problems,
    ]
    if problems:
        raise ConfigError("\n".join([f"{path}: invalid configuration", *problems]))
    return settings
