"""The daemon's tables of settings (`[server]`, `[[shares]]`, `[throttle]`, ...)
and `Settings`, the whole vaultd configuration they make up. Strict, unknown keys
rejected, every option described; the analyzers' own tables are in analyzers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from photovault.config.analyzers import FaceSettings, TextSettings
from photovault.config.fields import ConfigPath, check_cron
from photovault.config.layout import StateLayout


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Section):
    """The Unix-socket query service vaultctl talks to."""

    socket: ConfigPath = Field(Path("/run/photovault/vaultd.sock"), description="Unix socket path")
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
    path: ConfigPath
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
        return check_cron(value, allow_empty=True)


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
        return check_cron(value, allow_empty=True)


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
    page_out_at_rest: bool = Field(
        True,
        description="at rest, hand back the library code ingest used (clean file pages); "
        "the first search after it reads ~60 MiB back (~0.1 s from an SSD)",
    )
    clip: str | None = Field(None, description="installed CLIP model name (default: the first)")
    clip_variant: str = Field(
        "fp32", description="CLIP variant: fp32, int8 (CPU boxes: ~3x faster), fp16 (GPUs)"
    )
    clip_text_variant: str | None = Field(
        None,
        description="CLIP text tower variant for searches (kept loaded at rest); default: "
        "int8 on a CPU where installed (cosine >= 0.998 to fp32), else clip_variant",
    )
    tagger: str | None = Field(None, description="installed tagger model name (default: first)")


class AnalyzerSettings(_Section):
    """Which analyzers run, in this order."""

    enabled: list[str] = Field(default_factory=lambda: ["metadata"])


class Settings(_Section):
    """The whole vaultd configuration."""

    state_dir: ConfigPath = Field(Path("/var/lib/photovault"), description="catalog, index, models")
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
    text: TextSettings = Field(default_factory=TextSettings)

    @model_validator(mode="after")
    def _unique_shares(self) -> Settings:
        names = [s.name for s in self.shares]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"share names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def layout(self) -> StateLayout:
        return StateLayout(self.state_dir)

    @property
    def catalog_path(self) -> Path:
        return self.layout.catalog

    @property
    def sidecar_mirror(self) -> Path:
        return self.layout.sidecars

    @property
    def models_dir(self) -> Path:
        return self.layout.models

    def share(self, name: str) -> ShareSettings | None:
        return next((s for s in self.shares if s.name == name), None)
