"""Shared fixtures: photo factories and a real vaultd running in a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.vault import VaultProcess, write_config


@pytest.fixture
def vault_factory(tmp_path: Path):
    """Start vaultd processes on temp shares; every one is stopped at teardown."""
    started: list[VaultProcess] = []

    def start(**overrides) -> VaultProcess:
        cfg = write_config(tmp_path, **overrides)
        proc = VaultProcess(cfg, tmp_path)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
