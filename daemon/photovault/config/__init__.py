"""Typed settings, declared once.

The TOML file is validated against these pydantic models in strict mode: a
string is never taken for a number, a boolean or a list (`batch_size = "8"`,
`enabled = "yes"` are errors; an integer is accepted where a float is). Unknown
keys, wrong types, missing share folders (for `vaultd --check`; a real start
takes one for an outage and waits for it), a `state_dir` that is not a writable
folder, a socket path too long for AF_UNIX and a socket or admin group that
does not exist stop the daemon with a message that names the file, the key and
the reason (borgmatic's habit), all problems at once. `config/vaultd.toml` is
the documented example; a test loads it through the same models so the two
cannot drift apart.

Environment overrides: `VAULT_<KEY>` for a top-level key and
`VAULT_<SECTION>__<KEY>` for a key in a table (`VAULT_THROTTLE__BATCH_SIZE=16`);
env.py says how their values are read.

A leaf: it imports nothing of ours but `photovault.DEFAULT_CONFIG_PATH` and
nothing heavy (pydantic only), so vaultctl reads the socket path quickly. The
modules, one job each: `layout` (what lives where under `state_dir`), `fields`
(value types shared by the sections), `sections` (the daemon's tables and
`Settings`), `analyzers` (the faces and text analyzers' tables), `env`
(`VAULT_*` overrides), `checks` (what the types cannot say: this machine's
folders, groups, socket length) and `loading` (read, merge, validate, and the
messages naming file and key).
"""

from __future__ import annotations

from pathlib import Path

from photovault import DEFAULT_CONFIG_PATH as _DEFAULT_CONFIG_PATH
from photovault.config.analyzers import TEXT_LANGUAGES, FaceSettings, TextSettings
from photovault.config.checks import MAX_SOCKET_PATH_BYTES
from photovault.config.env import (
    ENV_PREFIX,
    NON_SETTING_ENV,
    EnvOverride,
    apply_env_overrides,
)
from photovault.config.fields import ConfigPath
from photovault.config.layout import StateLayout
from photovault.config.loading import ConfigError, load
from photovault.config.sections import (
    AnalyzerSettings,
    DecodeSettings,
    IngestSettings,
    MetricsSettings,
    ModelSettings,
    ServerSettings,
    Settings,
    ShareSettings,
    SidecarSettings,
    ThrottleSettings,
)

DEFAULT_CONFIG_PATH = Path(_DEFAULT_CONFIG_PATH)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "MAX_SOCKET_PATH_BYTES",
    "NON_SETTING_ENV",
    "TEXT_LANGUAGES",
    "AnalyzerSettings",
    "ConfigError",
    "ConfigPath",
    "DecodeSettings",
    "EnvOverride",
    "FaceSettings",
    "IngestSettings",
    "MetricsSettings",
    "ModelSettings",
    "ServerSettings",
    "Settings",
    "ShareSettings",
    "SidecarSettings",
    "StateLayout",
    "TextSettings",
    "ThrottleSettings",
    "apply_env_overrides",
    "load",
]
