"""Typed settings, declared once.

The TOML file is validated against these pydantic models: unknown keys, wrong
types and missing share folders stop the daemon with a message that names the
file, the key and the reason (borgmatic's habit). `config/vaultd.toml` is the
documented example; a test loads it through the same models so the two cannot
drift apart.

Environment overrides: `VAULT_<KEY>` for a top-level key and
`VAULT_<SECTION>__<KEY>` for a key in a table (`VAULT_THROTTLE__BATCH_SIZE=16`,
`VAULT_SERVER__SOCKET=/tmp/v.sock`). Values are read as TOML values when they
parse as one (numbers, booleans, lists) and as plain strings otherwise.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from photovault.analyze.faces import FaceSettings

DEFAULT_CONFIG_PATH = Path("/etc/photovault/vaultd.toml")
ENV_PREFIX = "VAULT_"


class ConfigError(Exception):
    """The configuration cannot be used; the message names file, key and reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_cron(value: str, *, allow_empty: bool) -> str:
    if not value and allow_empty:
        return value
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(
            f"not a cron expression ({exc}); expected 5 fields like '0 3 * * *'"
        ) from exc
    return value


class ServerSettings(_Section):
    """The Unix-socket query service vaultctl talks to."""

    socket: Path = Field(Path("/run/photovault/vaultd.sock"), description="Unix socket path")
    socket_group: str | None = Field(None, description="group owning the socket (mode 0660)")
    admin_group: str | None = Field(None, description="members see every photo")
    request_timeout_seconds: float = Field(10.0, gt=0, description="drop clients that stall")
    max_request_bytes: int = Field(1_048_576, gt=0, description="largest accepted request")
    memory_index: bool = Field(
        True,
        description="hold search vectors in RAM for fast text searches (~650 MiB per 1M photos)",
    )


class MetricsSettings(_Section):
    """Prometheus exporter."""

    listen: str = Field("127.0.0.1:9108", description="host:port, or empty to disable")

    @field_validator("listen")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError("expected HOST:PORT such as 127.0.0.1:9108")
        if host not in ("127.0.0.1", "localhost", "[::1]", "::1") and not host.startswith("127."):
            raise ValueError("metrics listen only on loopback (127.0.0.1 or [::1])")
        return value


class ShareSettings(_Section):
    """One watched folder tree, typically an SMB share's path on disk."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    path: Path
    read_only: bool = Field(False, description="never write beside the photos")
    watch: Literal["auto", "inotify", "polling"] = Field(
        "auto", description="auto = inotify, falling back to polling when watches run out"
    )


class IngestSettings(_Section):
    """How files enter the queue."""

    settle_seconds: float = Field(5.0, ge=0, description="size+mtime must be still this long")
    open_timeout_seconds: float = Field(
        120.0, ge=0, description="queue a stable file even without a close event after this long"
    )
    rescan: str = Field("0 3 * * *", description="cron expression for the reconcile scan")
    max_attempts: int = Field(3, ge=1, description="failures before a file is quarantined")
    poll_interval_seconds: float = Field(10.0, gt=0, description="polling fallback interval")

    @field_validator("rescan")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value, allow_empty=True)


class ThrottleSettings(_Section):
    """How fast the batch worker may go."""

    max_images_per_second: float = Field(0.0, ge=0, description="0 = unlimited")
    batch_size: int = Field(16, ge=1, le=1024)
    decode_workers: int = Field(2, ge=1, le=64)
    quiet_hours: str = Field("", description="cron expression of the minutes that are quiet")
    quiet_rate: float = Field(0.0, ge=0, description="images/s during quiet hours; 0 = pause")

    @field_validator("quiet_hours")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value, allow_empty=True)


class DecodeSettings(_Section):
    """Decoder safety limits."""

    max_megapixels: float = Field(100.0, gt=0, description="refuse larger images (bombs)")


class SidecarSettings(_Section):
    """XMP sidecars beside the photos (or in a mirror tree for read-only shares)."""

    enabled: bool = Field(True, description="write tags and faces into XMP sidecars")
    naming: Literal["ext", "base"] = Field(
        "ext", description="ext: IMG_1.jpg.xmp (digiKam, darktable); base: IMG_1.xmp (Lightroom)"
    )


class ModelSettings(_Section):
    """Which installed models the analyzers use, and how sessions run."""

    providers: list[str] = Field(
        default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="onnxruntime execution providers in order of preference",
    )
    intra_threads: int = Field(2, ge=0, description="threads inside one operator; 0 = all cores")
    inter_threads: int = Field(1, ge=0, description="operators run in parallel")
    idle_unload_seconds: float = Field(600.0, gt=0, description="unload idle models after this")
    clip: str | None = Field(None, description="installed CLIP model name (default: the first)")
    clip_variant: str = Field(
        "fp32", description="CLIP variant: fp32, int8 (CPU boxes: ~3x faster), fp16 (GPUs)"
    )
    tagger: str | None = Field(None, description="installed tagger model name (default: first)")


class AnalyzerSettings(_Section):
    """Which analyzers run, in this order."""

    enabled: list[str] = Field(default_factory=lambda: ["metadata"])


class Settings(_Section):
    """The whole vaultd configuration."""

    state_dir: Path = Field(Path("/var/lib/photovault"), description="catalog, index, models")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    server: ServerSettings = Field(default_factory=ServerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    shares: list[ShareSettings] = Field(default_factory=list)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    decode: DecodeSettings = Field(default_factory=DecodeSettings)
    analyzers: AnalyzerSettings = Field(default_factory=AnalyzerSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    sidecars: SidecarSettings = Field(default_factory=SidecarSettings)
    faces: FaceSettings = Field(default_factory=FaceSettings)

    @model_validator(mode="after")
    def _unique_shares(self) -> Settings:
        names = [s.name for s in self.shares]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"share names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def catalog_path(self) -> Path:
        return self.state_dir / "catalog.sqlite3"

    @property
    def sidecar_mirror(self) -> Path:
        return self.state_dir / "sidecars"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    def share(self, name: str) -> ShareSettings | None:
        return next((s for s in self.shares if s.name == name), None)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_env_overrides(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Return a copy of `data` with VAULT_* variables applied (see module docstring)."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "VAULT_SOCKET":
            continue  # VAULT_SOCKET is vaultctl's, not a config key
        key = name[len(ENV_PREFIX) :].lower()
        if "__" in key:
            section, _, sub = key.partition("__")
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[sub] = _parse_env_value(raw)
        else:
            merged[key] = _parse_env_value(raw)
    return merged


def _format_errors(path: Path, exc: ValidationError, data: dict[str, Any]) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        parts: list[str] = []
        for loc in err["loc"]:
            if isinstance(loc, int) and parts:
                parts[-1] = f"{parts[-1]}[{loc}]"
            else:
                parts.append(str(loc))
        key = ".".join(parts) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


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
    path: Path, environ: dict[str, str] | None = None, *, check_paths: bool = True
) -> Settings:
    """Read, merge env overrides, validate. Raises ConfigError naming file and key."""
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
    data = apply_env_overrides(data, environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc, data)) from exc
    settings = _resolve_relative(settings, path.resolve().parent)
    if check_paths:
        problems = []
        for i, share in enumerate(settings.shares):
            if not share.path.is_dir():
                why = "does not exist" if not share.path.exists() else "is not a folder"
                problems.append(f"  shares[{i}].path: {share.path} {why} (share {share.name!r})")
        if problems:
            raise ConfigError("\n".join([f"{path}: invalid configuration", *problems]))
    return settings
