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
`VAULT_<SECTION>__<KEY>` for a key in a table (`VAULT_THROTTLE__BATCH_SIZE=16`,
`VAULT_SERVER__SOCKET=/tmp/v.sock`). Values are read as TOML values when they
parse as one (numbers, booleans, lists) and as plain strings otherwise, then
checked with the same strict types. A `VAULT_` variable that names no setting
is an error naming the variable; `VAULT_SOCKET` and `VAULT_CONFIG` are read by
the commands themselves and are not settings.
"""

from __future__ import annotations

import datetime
import grp
import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from photovault import DEFAULT_CONFIG_PATH as _DEFAULT_CONFIG_PATH

DEFAULT_CONFIG_PATH = Path(_DEFAULT_CONFIG_PATH)


class StateLayout:
    """What lives where under `state_dir`: the one description that the daemon,
    backup, restore and the people store use (names relative to the state dir)."""

    CATALOG = "catalog.sqlite3"  # file states, queue, results per content
    PEOPLE = "people.sqlite3"  # faces, people, names (the source of names)
    INDEX = "index"  # LanceDB search index (rebuilt from the catalog when lost)
    MODELS = "models"  # installed ONNX models with their manifests
    SIDECARS = "sidecars"  # mirror tree: sidecars of read-only shares, overlong names
    FACE_WEIGHTS = "deepface"  # face model weights ($DEEPFACE_HOME)
    TAGS = "tags.toml"  # the user's zero-shot tag vocabulary, when present

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def catalog(self) -> Path:
        return self.root / self.CATALOG

    @property
    def people(self) -> Path:
        return self.root / self.PEOPLE

    @property
    def index(self) -> Path:
        return self.root / self.INDEX

    @property
    def models(self) -> Path:
        return self.root / self.MODELS

    @property
    def sidecars(self) -> Path:
        return self.root / self.SIDECARS

    @property
    def face_weights(self) -> Path:
        return self.root / self.FACE_WEIGHTS


ENV_PREFIX = "VAULT_"
#: `VAULT_` variables that are not settings: vaultctl's socket, both commands' config file.
NON_SETTING_ENV = frozenset({"VAULT_SOCKET", "VAULT_CONFIG"})
#: Longest Unix socket path in bytes: Linux's sun_path holds 108, the last one the NUL.
MAX_SOCKET_PATH_BYTES = 107


class ConfigError(Exception):
    """The configuration cannot be used; the message names file, key and reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _to_path(value: object) -> object:
    """Paths are TOML strings; strict mode alone would want a Path object."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a path (a string), got {_describe(value)}")
    if not value:
        raise ValueError("expected a path, got an empty string")
    return Path(value)


ConfigPath = Annotated[Path, BeforeValidator(_to_path)]


def _check_cron(value: str, *, allow_empty: bool) -> str:
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


class FaceSettings(BaseModel):
    """`[faces]` in vaultd.toml. Defaults are the offline path measured in bench/faces.py
    (the analyzer itself lives in analyze/faces.py)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "Dlib",
        description="recognition model: Dlib (offline) or a deepface model such as "
        "ArcFace, Facenet512, SFace (downloaded on first use)",
    )
    detector: str = Field(
        "dlib+mtcnn",
        description="face detector: dlib+mtcnn (HOG plus MTCNN's faces HOG misses: turned "
        "and small faces), dlib (HOG), mtcnn_onnx, dlib_cnn, opencv (all offline) or a "
        "deepface backend such as retinaface, yunet, mtcnn (downloaded on first use)",
    )
    engine: Literal["auto", "dlib", "deepface"] = Field(
        "auto",
        description="auto = call dlib directly for model Dlib with an offline detector, "
        "deepface otherwise",
    )
    image_side: int = Field(
        1024, ge=256, le=4096, description="long side (px) of the image faces are searched in"
    )
    upsample: int = Field(
        1,
        ge=0,
        le=2,
        description="dlib detectors: upsample the image this many times; 1 finds faces down "
        "to ~40 px at 3x the cost of 0 (~80 px)",
    )
    min_face_px: int = Field(
        40, ge=1, description="skip faces whose box is narrower than this in the working image"
    )
    min_score: float = Field(
        0.3,
        description="skip faces the detector scores below this (HOG: SVM margin, ~0..3; "
        "dlib_cnn: ~0..1.5; opencv: cascade level weight; deepface: confidence 0..1)",
    )
    max_faces: int = Field(
        500, ge=1, description="keep at most this many faces per photo (group photos: 50+)"
    )
    num_jitters: int = Field(
        1, ge=1, le=100, description="Dlib: average the embedding over this many jittered chips"
    )
    cluster_distance: float = Field(
        0.5,
        gt=0,
        description="two faces are neighbours when their embedding distance is at most this "
        "(Dlib: euclidean; deepface models: cosine)",
    )
    join_distance: float = Field(
        0.5,
        gt=0,
        description="a new face joins the nearest named person within this distance",
    )
    min_cluster_faces: int = Field(
        3, ge=2, description="faces a cluster needs before it becomes a person"
    )


#: Languages `[text] languages` accepts (ISO 639-1), by script. The `pp-ocrv6` model
#: reads all of them; `pp-ocrv4` reads Latin letters without most accents and Chinese
#: (the analyzer refuses a language its installed model does not read).
_LATIN_LANGUAGES = (
    "en de fr es it pt nl sv da no nb fi is pl cs sk sl hr bs ro hu tr et lv lt ca "
    "eu gl ga cy mt sq id ms vi tl sw af la"
)
TEXT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "latin": tuple(_LATIN_LANGUAGES.split()),
    "greek": ("el",),
    "chinese": ("zh",),
    "japanese": ("ja",),
}


class TextSettings(BaseModel):
    """`[text]` in vaultd.toml: the OCR analyzer (analyze/text.py). Defaults are measured
    in bench/text.py on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str | None = Field(
        None,
        description="installed text model name (default: the first installed; "
        "`vaultctl models install text pp-ocrv6`)",
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="ISO 639-1 codes of the languages to read. pp-ocrv6 reads Latin-script "
        "languages (with accents), Greek (el), Chinese (zh) and Japanese (ja); pp-ocrv4 "
        "reads English-like Latin text and Chinese",
    )
    image_side: int = Field(
        1024, ge=320, le=4096, description="long side (px) of the image text is read in"
    )
    gate_side: int = Field(
        320,
        ge=64,
        le=1024,
        description="long side (px) of the quick look that decides a photo holds no text",
    )
    gate_threshold: float = Field(
        0.65,
        ge=0,
        le=1,
        description="the quick look sees text at this detector score (bench/text.py: text "
        "photos 0.69+, photos without text up to 0.6)",
    )
    box_threshold: float = Field(
        0.5, ge=0, le=1, description="detector score a text region needs to be read"
    )
    min_score: float = Field(
        0.6, ge=0, le=1, description="keep a line whose mean character confidence is this"
    )
    document_share: float = Field(
        0.08,
        gt=0,
        le=1,
        description="a photo whose lines cover this share of it is a document "
        "(Documents|Text, |Receipt or |Screenshot)",
    )

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        known = sorted(code for codes in TEXT_LANGUAGES.values() for code in codes)
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(
                f"unknown language(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})"
            )
        if not value:
            raise ValueError("list at least one language")
        return value


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


def _parse_env_value(raw: str) -> Any:
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


def _read_env(environ: dict[str, str]) -> tuple[list[EnvOverride], list[str]]:
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
            overrides.append((name, key, _parse_env_value(environ[name])))
    return overrides, problems


def _apply(data: dict[str, Any], overrides: list[EnvOverride]) -> dict[str, Any]:
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
    """Return a copy of `data` with VAULT_* settings applied (see module docstring).

    Variables that name no setting are left out here; `load` reports them.
    """
    return _apply(data, _read_env(environ)[0])


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


def _describe(value: object) -> str:
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


def _unquoted_fits(kind: str, value: str) -> bool:
    """True when `value` written without quotes would have the expected type."""
    parsed = _parse_env_value(value)
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
        reason = f"expected {_EXPECTED[kind]}, got {_describe(value)}"
        if isinstance(value, str) and _unquoted_fits(kind, value):
            reason += " (write it without quotes)"
        return reason
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind in _OUT_OF_RANGE:
        message += f", got {_describe(err.get('input'))}"
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


def _source(loc: tuple[int | str, ...], overrides: list[EnvOverride]) -> str:
    """' (from environment variable X)' when an override set this key."""
    for name, key, _value in overrides:
        if tuple(loc[: len(key)]) == key:
            return f" (from environment variable {name})"
    return ""


def _validation_problems(exc: ValidationError, overrides: list[EnvOverride]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        lines.append(f"  {_key_name(loc)}{_source(loc, overrides)}: {_reason(err)}")
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


def _state_dir_problem(path: Path) -> str | None:
    """Why vaultd could not keep its state in `path` (creating it if missing), or None."""
    who = f"uid {os.geteuid()}"
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            return "is a symbolic link to nothing"
    except OSError as exc:
        return f"cannot be checked: {exc.strerror or exc}"
    else:
        if not stat.S_ISDIR(st.st_mode):
            return "is not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"is not writable by {who}"
        return None
    for ancestor in path.parents:  # missing: vaultd creates it, so its first existing parent
        try:
            st = ancestor.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            return f"cannot be created: {ancestor}: {exc.strerror or exc}"
        if not stat.S_ISDIR(st.st_mode):
            return f"cannot be created: {ancestor} is not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"cannot be created: {ancestor} is not writable by {who}"
        return None
    return None


def _group_problems(server: ServerSettings, overrides: list[EnvOverride]) -> list[str]:
    """A named group must exist, and vaultd must be able to give the socket to its group."""
    problems = []
    for key in ("socket_group", "admin_group"):
        name = getattr(server, key)
        if name is None:
            continue
        where = f"[server] {key}{_source(('server', key), overrides)}"
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            problems.append(f"  {where}: no group named {json.dumps(name)} on this system")
            continue
        uid = os.geteuid()
        if key == "socket_group" and uid != 0 and gid != os.getegid() and gid not in os.getgroups():
            problems.append(
                f"  {where}: uid {uid} is neither root nor a member of group "
                f"{json.dumps(name)}, so it cannot give the socket to that group"
            )
    return problems


def _share_problem(path: Path) -> tuple[str | None, bool]:
    """Why a share folder cannot be used now, and whether that is only a missing
    folder (an outage at run time: a disk not mounted yet)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist", True
    except OSError as exc:
        return f"cannot be reached: {exc.strerror or exc}", False
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder", False
    return None, False


def _setting_problems(
    settings: Settings,
    overrides: list[EnvOverride],
    *,
    check_paths: bool,
    missing_shares_ok: bool = False,
) -> list[str]:
    """What the types cannot say: the socket path's length, and with `check_paths` the
    state folder, the groups and the share folders as this machine has them (a
    missing share folder is no problem with `missing_shares_ok`)."""
    problems = []
    if check_paths:
        why = _state_dir_problem(settings.state_dir)
        if why:
            where = f"state_dir{_source(('state_dir',), overrides)}"
            problems.append(f"  {where}: {settings.state_dir} {why}")
    socket = settings.server.socket
    size = len(os.fsencode(socket))
    if size > MAX_SOCKET_PATH_BYTES:
        where = f"[server] socket{_source(('server', 'socket'), overrides)}"
        problems.append(
            f"  {where}: {socket} is {size} bytes long; a Unix socket path may have at most "
            f"{MAX_SOCKET_PATH_BYTES} bytes (AF_UNIX limit)"
        )
    if check_paths:
        problems.extend(_group_problems(settings.server, overrides))
        for i, share in enumerate(settings.shares):
            why, missing = _share_problem(share.path)
            if why and not (missing and missing_shares_ok):
                problems.append(
                    f"  [[shares]] #{i + 1} path: {share.path} {why} (share {share.name!r})"
                )
    return problems


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
    overrides, env_problems = _read_env(environ)
    data = _apply(data, overrides)
    try:
        settings = Settings.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = [*_validation_problems(exc, overrides), *env_problems]
        raise ConfigError("\n".join([f"{path}: invalid configuration", *problems])) from exc
    settings = _resolve_relative(settings, path.resolve().parent)
    problems = [
        *_setting_problems(
            settings, overrides, check_paths=check_paths, missing_shares_ok=missing_shares_ok
        ),
        *env_problems,
    ]
    if problems:
        raise ConfigError("\n".join([f"{path}: invalid configuration", *problems]))
    return settings
