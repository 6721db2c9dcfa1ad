"""`VAULT_` environment variables: settings, non-settings and mistakes (#14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from photovault.config import ConfigError, apply_env_overrides, load

GOOD = """
state_dir = "state"
[[shares]]
name = "family"
path = "photos"
"""


def write(tmp_path: Path, text: str = "") -> Path:
    (tmp_path / "photos").mkdir(exist_ok=True)
    p = tmp_path / "vaultd.toml"
    p.write_text(GOOD + text)
    return p


def problem(p: Path, environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as exc:
        load(p, environ=environ)
    return str(exc.value)


def vaultd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("vaultd")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "photovault.daemon_main"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=60, env={**clean, **env}
    )


def test_an_unknown_variable_is_reported_as_an_environment_variable(tmp_path: Path) -> None:
    msg = problem(write(tmp_path), {"VAULT_NOPE": "1"})
    assert "  environment variable VAULT_NOPE: not a known setting; settings are" in msg
    assert "unknown key" not in msg and "nope:" not in msg


def test_an_unknown_key_of_a_known_section_names_the_variable(tmp_path: Path) -> None:
    msg = problem(write(tmp_path), {"VAULT_THROTTLE__BATCH_SISE": "3"})
    assert "environment variable VAULT_THROTTLE__BATCH_SISE: not a known setting" in msg
    assert '([throttle] has no key "batch_sise")' in msg


def test_a_key_below_a_plain_setting_is_not_a_setting(tmp_path: Path) -> None:
    msg = problem(write(tmp_path), {"VAULT_STATE_DIR__X": "1"})
    assert "environment variable VAULT_STATE_DIR__X: not a known setting" in msg


def test_environment_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[throttle]\nbatch_size = "8"\n'), {"VAULT_NOPE": "1"})
    assert "[throttle] batch_size: expected an integer" in msg
    assert "environment variable VAULT_NOPE" in msg


def test_vault_config_and_vault_socket_are_not_settings(tmp_path: Path) -> None:
    env = {"VAULT_CONFIG": str(tmp_path / "vaultd.toml"), "VAULT_SOCKET": "/tmp/v.sock"}
    s = load(write(tmp_path), environ=env)
    assert s.server.socket != Path("/tmp/v.sock")


def test_unknown_variables_are_left_out_of_the_overrides() -> None:
    env = {"VAULT_NOPE": "1", "VAULT_LOG_LEVEL": "DEBUG", "HOME": "/root"}
    assert apply_env_overrides({}, env) == {"log_level": "DEBUG"}


def test_vaultd_check_reads_its_config_from_vault_config(tmp_path: Path) -> None:
    result = vaultd("--check", env={"VAULT_CONFIG": str(write(tmp_path))})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tmp_path / 'vaultd.toml'}: OK (1 shares)"


def test_vaultd_check_names_an_unknown_environment_variable(tmp_path: Path) -> None:
    result = vaultd("--check", "--config", str(write(tmp_path)), env={"VAULT_NOPE": "1"})
    assert result.returncode == 2
    assert "environment variable VAULT_NOPE: not a known setting" in result.stderr
