"""The model store: installed ONNX models under ``<state_dir>/models/<name>/``.

Each model folder holds its ONNX files and a ``manifest.json`` that says what
the model is (task, architecture, preprocessing) and what every file must be
(sha256, input and output shapes). Nothing is trusted because it sits in the
folder: a model is only installed after every file hashes, loads and has the
shapes its manifest declares, so a truncated download, a file for another
architecture or a hand-edited manifest is refused with a reason naming the
file, instead of failing on the first photo hours later.

Installs are staged in a hidden sibling folder and renamed into place, so a
crash mid-install never leaves a half-written model that looks installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photovault.models.session import ModelLoadError, TensorSpec, inspect_model

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
TASKS = ("clip", "tagger", "text")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.onnx$")
TEXT_MASK_INPUT = "attention_mask"
_DATA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelError(Exception):
    """A model cannot be installed, found or used; the message is shown as is."""


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of a model: which tower (role) and precision (variant) it is."""

    path: str
    sha256: str
    role: str  # "image" (tagger, clip image tower) or "text" (clip text tower)
    variant: str  # "fp32", "int8" ...
    inputs: dict[str, list[int | None]]
    outputs: dict[str, list[int | None]]
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "role": self.role,
            "variant": self.variant,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of one model."""

    name: str
    task: str
    architecture: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    files: tuple[ModelFile, ...]
    embedding_dim: int | None = None
    num_classes: int | None = None
    source: str = ""
    licence: str = ""
    # Free-form, task-specific facts (resize rule, interpolation, label set,
    # tokenizer, context length, logit scale ...).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def variants(self) -> list[str]:
        return sorted({f.variant for f in self.files})

    def file_for(self, role: str, variant: str) -> ModelFile:
        for f in self.files:
            if f.role == role and f.variant == variant:
                return f
        raise ModelError(
            f"model {self.name} has no {role} file in variant {variant!r} "
            f"(variants: {', '.join(self.variants)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "task": self.task,
            "architecture": self.architecture,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "embedding_dim": self.embedding_dim,
            "num_classes": self.num_classes,
            "source": self.source,
            "licence": self.licence,
            "variants": self.variants,
            "files": [f.to_dict() for f in self.files],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Manifest:
        """Parse and check a manifest; `where` names the file in errors."""
        if not isinstance(data, dict):
            raise ModelError(f"{where}: manifest must be a JSON object")
        fmt = data.get("format", MANIFEST_FORMAT)
        if fmt != MANIFEST_FORMAT:
            raise ModelError(f"{where}: manifest format {fmt} not supported (expected 1)")
        try:
            name = str(data["name"])
            task = str(data["task"])
            mean = tuple(float(x) for x in data["mean"])
            std = tuple(float(x) for x in data["std"])
            files = tuple(_parse_file(f, where) for f in data["files"])
            manifest = cls(
                name=name,
                task=task,
                architecture=str(data["architecture"]),
                input_size=int(data["input_size"]),
                mean=mean,  # type: ignore[arg-type]
                std=std,  # type: ignore[arg-type]
                files=files,
                embedding_dim=_opt_int(data.get("embedding_dim")),
                num_classes=_opt_int(data.get("num_classes")),
                source=str(data.get("source", "")),
                licence=str(data.get("licence", "")),
                extra=dict(data.get("extra") or {}),
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: invalid manifest: {type(exc).__name__}: {exc}") from exc
        problems = manifest.problems()
        if problems:
            raise ModelError(f"{where}: " + "; ".join(problems))
        return manifest

    def problems(self) -> list[str]:
        """Inconsistencies inside the manifest itself (no file is read)."""
        out: list[str] = []
        if not _NAME_RE.match(self.name):
            out.append(f"name {self.name!r} must match {_NAME_RE.pattern}")
        if self.task not in TASKS:
            out.append(f"task {self.task!r} must be one of {', '.join(TASKS)}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            out.append("mean and std must be three numbers each, std > 0")
        if self.input_size <= 0:
            out.append("input_size must be positive")
        if not self.files:
            out.append("no files listed")
        seen: set[tuple[str, str]] = set()
        for f in self.files:
            if (f.role, f.variant) in seen:
                out.append(f"two files for role {f.role} variant {f.variant}")
            seen.add((f.role, f.variant))
        roles = {f.role for f in self.files}
        needed = {"clip": {"image", "text"}, "text": {"det", "cls", "rec"}}.get(
            self.task, {"image"}
        )
        if self.task == "text" and "reread" in roles:  # optional second recognizer
            needed = needed | {"reread"}
        if roles != needed:
            out.append(f"task {self.task} needs roles {sorted(needed)}, got {sorted(roles)}")
        if self.task == "clip" and not self.embedding_dim:
            out.append("clip models need embedding_dim")
        if self.task in ("tagger", "text") and not self.num_classes:
            out.append(f"{self.task} models need num_classes")
        for f in self.files:
            out.extend(self._file_shape_problems(f))
        return out

    def _file_shape_problems(self, f: ModelFile) -> list[str]:
        """The declared shapes must fit the task, so the analyzer can trust them."""
        out: list[str] = []
        if self.task == "text":  # OCR: images of any size in, a map or character scores out
            return _ocr_shape_problems(f, self.num_classes)
        # A text tower may also take an attention mask (Multilingual-CLIP's XLM-R).
        masked = f.role == "text" and len(f.inputs) == 2 and TEXT_MASK_INPUT in f.inputs
        if (len(f.inputs) != 1 and not masked) or len(f.outputs) != 1:
            return [f"{f.path}: expected exactly one input and one output"]
        in_shape = next(s for n, s in f.inputs.items() if n != TEXT_MASK_INPUT or not masked)
        (out_shape,) = f.outputs.values()
        if masked and len(f.inputs[TEXT_MASK_INPUT]) != 2:
            out.append(f"{f.path}: {TEXT_MASK_INPUT} must be [batch, context_length]")
        if f.role == "image":
            want = [3, self.input_size, self.input_size]
            if len(in_shape) != 4 or list(in_shape[1:]) != want:
                out.append(f"{f.path}: image input must be [batch, {', '.join(map(str, want))}]")
        elif f.role == "text" and len(in_shape) != 2:
            out.append(f"{f.path}: text input must be [batch, context_length]")
        width = self.embedding_dim if self.task == "clip" else self.num_classes
        if len(out_shape) != 2 or out_shape[1] != width:
            out.append(f"{f.path}: output must be [batch, {width}], manifest says {out_shape}")
        return out


def _ocr_shape_problems(f: ModelFile, num_classes: int | None) -> list[str]:
    """Task `text` (PP-OCR det/cls/rec, and optionally a second recognizer `reread`):
    one [batch, 3, h, w] input, one output; the recognizer scores `num_classes`
    characters (its charset, CTC blank and space)."""
    if len(f.inputs) != 1 or len(f.outputs) != 1:
        return [f"{f.path}: expected exactly one input and one output"]
    (in_shape,) = f.inputs.values()
    (out_shape,) = f.outputs.values()
    out = []
    if len(in_shape) != 4 or in_shape[1] != 3:
        out.append(f"{f.path}: input must be [batch, 3, height, width]")
    if f.role == "rec" and (len(out_shape) != 3 or out_shape[2] != num_classes):
        out.append(f"{f.path}: rec output must be [batch, steps, {num_classes}]")
    if f.role == "reread" and (len(out_shape) != 3 or not out_shape[2]):
        out.append(f"{f.path}: reread output must be [batch, steps, classes]")
    return out


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _parse_file(data: Any, where: str) -> ModelFile:
    if not isinstance(data, dict):
        raise ModelError(f"{where}: each entry of files must be an object")
    path = str(data["path"])
    if not _FILE_RE.match(path):
        raise ModelError(f"{where}: file name {path!r} must be a plain *.onnx name")

    def shapes(key: str) -> dict[str, list[int | None]]:
        raw = data[key]
        if not isinstance(raw, dict):
            raise ModelError(f"{where}: {path}: {key} must map names to shapes")
        return {str(k): [None if d is None else int(d) for d in v] for k, v in raw.items()}

    return ModelFile(
        path=path,
        sha256=str(data["sha256"]).lower(),
        role=str(data["role"]),
        variant=str(data["variant"]),
        inputs=shapes("inputs"),
        outputs=shapes("outputs"),
        bytes=int(data.get("bytes", 0)),
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shapes_of(specs: Iterable[TensorSpec]) -> dict[str, list[int | None]]:
    """Manifest form of an onnxruntime signature (export scripts use this)."""
    return {s.name: list(s.shape) for s in specs}


def describe_file(path: Path, role: str, variant: str) -> ModelFile:
    """A manifest entry for an ONNX file, read from the file itself (export time)."""
    signature = inspect_model(path)
    return ModelFile(
        path=path.name,
        sha256=sha256_file(path),
        role=role,
        variant=variant,
        inputs=shapes_of(signature.inputs),
        outputs=shapes_of(signature.outputs),
        bytes=path.stat().st_size,
    )


def validate_dir(model_dir: Path, kind: str | None = None) -> Manifest:
    """Check a model folder completely; returns its manifest or raises ModelError.

    Every file must exist, hash to its manifest sha256, load in onnxruntime
    and have exactly the declared input/output names and shapes.
    """
    manifest_path = model_dir / MANIFEST
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{manifest_path}: no manifest.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    manifest = Manifest.from_dict(data, str(manifest_path))
    if kind is not None and manifest.task != kind:
        raise ModelError(
            f"{manifest_path}: model {manifest.name} is a {manifest.task} model, not {kind}"
        )
    for f in manifest.files:
        _validate_file(model_dir / f.path, f)
    return manifest


def _validate_file(path: Path, expected: ModelFile) -> None:
    if not path.is_file():
        raise ModelError(f"{path}: file listed in manifest is missing")
    size = path.stat().st_size
    if expected.bytes and size != expected.bytes:
        raise ModelError(f"{path}: size {size} bytes, manifest says {expected.bytes} (truncated?)")
    digest = sha256_file(path)
    if digest != expected.sha256:
        raise ModelError(f"{path}: sha256 {digest} does not match manifest {expected.sha256}")
    try:
        signature = inspect_model(path)
    except ModelLoadError as exc:
        raise ModelError(f"{path}: does not load as ONNX: {exc.reason}") from exc
    for label, got, want in (
        ("inputs", shapes_of(signature.inputs), expected.inputs),
        ("outputs", shapes_of(signature.outputs), expected.outputs),
    ):
        if got != want:
            raise ModelError(f"{path}: {label} are {got}, manifest says {want}")


@dataclass(frozen=True)
class InstalledModel:
    """A model folder in the store with its manifest."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    def file(self, role: str, variant: str) -> Path:
        return self.path / self.manifest.file_for(role, variant).path


class ModelStore:
    """Installed models under one folder (``<state_dir>/models``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ModelError(f"invalid model name {name!r}")
        return self.root / name

    def list(self) -> list[InstalledModel]:
        """Installed models with a readable manifest (files are not re-hashed)."""
        out: list[InstalledModel] = []
        if not self.root.is_dir():
            return out
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") or not child.is_dir():
                continue
            try:
                data = json.loads((child / MANIFEST).read_text(encoding="utf-8"))
                manifest = Manifest.from_dict(data, str(child / MANIFEST))
            except (OSError, ValueError, ModelError) as exc:
                log.warning("ignoring model folder %s: %s", child, exc)
                continue
            out.append(InstalledModel(child, manifest))
        return out

    def get(self, name: str, kind: str | None = None) -> InstalledModel:
        """An installed model by name; raises ModelError saying how to install it."""
        path = self._dir(name)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            hint = f" (vaultctl models install {kind} {name})" if kind else ""
            raise ModelError(f"model {name} is not installed in {self.root}{hint}")
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{manifest_path}: unreadable manifest: {exc}") from exc
        manifest = Manifest.from_dict(data, str(manifest_path))
        if kind is not None and manifest.task != kind:
            raise ModelError(f"model {name} is a {manifest.task} model, not {kind}")
        return InstalledModel(path, manifest)

    def choose(
        self, kind: str, name: str | None = None, *, label: str | None = None, hint: str = ""
    ) -> InstalledModel:
        """The named model of this kind, or else the first one installed (what an
        analyzer's `model` setting means); ModelError naming the store, and `hint` (how
        to install one), when there is none."""
        if name is not None:
            return self.get(name, kind=kind)
        installed = [m for m in self.list() if m.manifest.task == kind]
        if not installed:
            raise ModelError(f"no {label or kind} model installed in {self.root}{hint}")
        return installed[0]

    def verify(self, name: str) -> Manifest:
        """Full validation (hashes, load, shapes) of an installed model."""
        return validate_dir(self._dir(name))

    def import_dir(self, src_dir: Path, kind: str | None = None, replace: bool = False) -> Manifest:
        """Validate a folder with ONNX files + manifest.json and install a copy.

        The copy is validated (not the source) so what is checked is what gets
        used; it is then renamed into place.
        """
        src_dir = Path(src_dir)
        if not src_dir.is_dir():
            raise ModelError(f"{src_dir}: not a folder")
        # Parse first for a clear error before copying large files.
        manifest = validate_dir(src_dir, kind)
        target = self._dir(manifest.name)
        if target.exists() and not replace:
            raise ModelError(
                f"model {manifest.name} is already installed at {target}; "
                "remove it first or import with replace"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{manifest.name}-", dir=self.root))
        try:
            for f in manifest.files:
                shutil.copyfile(src_dir / f.path, staging / f.path)
            for extra in manifest.extra.get("data_files", []):
                if not _DATA_RE.match(str(extra)):
                    raise ModelError(f"{src_dir / MANIFEST}: bad data file name {extra!r}")
                shutil.copyfile(src_dir / extra, staging / extra)
            (staging / MANIFEST).write_text(
                json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8"
            )
            validate_dir(staging, kind)
            os.chmod(staging, 0o755)
            if target.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".old-{manifest.name}-", dir=self.root))
                target.rename(trash / "model")
                staging.rename(target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("installed model %s (%s) in %s", manifest.name, manifest.task, target)
        return manifest

    def remove(self, name: str) -> None:
        target = self._dir(name)
        if not target.exists():
            raise ModelError(f"model {name} is not installed in {self.root}")
        trash = Path(tempfile.mkdtemp(prefix=f".removing-{name}-", dir=self.root))
        target.rename(trash / "model")
        shutil.rmtree(trash, ignore_errors=True)
        log.info("removed model %s", name)


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` (export scripts use this)."""
    path = model_dir / MANIFEST
    path.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


# --- functions for `vaultctl models ...` -----------------------------------------


def list_models(store_dir: Path) -> list[dict[str, Any]]:
    """One row per installed model, for `vaultctl models list`."""
    rows = []
    for m in ModelStore(store_dir).list():
        total = sum(f.bytes for f in m.manifest.files)
        rows.append(
            {
                "name": m.name,
                "task": m.manifest.task,
                "architecture": m.manifest.architecture,
                "variants": m.manifest.variants,
                "bytes": total,
                "licence": m.manifest.licence,
                "source": m.manifest.source,
                "path": str(m.path),
            }
        )
    return rows


def import_model(store_dir: Path, kind: str, src_dir: Path, replace: bool = False) -> Manifest:
    """`vaultctl models import KIND DIR`: install a prepared folder after validation."""
    if kind not in TASKS:
        raise ModelError(f"unknown model kind {kind!r} (expected one of {', '.join(TASKS)})")
    return ModelStore(store_dir).import_dir(Path(src_dir), kind=kind, replace=replace)


def remove(store_dir: Path, name: str) -> None:
    """`vaultctl models remove NAME`."""
    ModelStore(store_dir).remove(name)
