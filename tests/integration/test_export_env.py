"""`vaultctl models install tagger` from an environment without torch builds the export
environment (a real venv with torch, from this machine's package sources), exports there,
and the daemon's tagger runs the result. One test: it installs several GB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from photovault.models.exportenv import ENV_VAR

# Runs vaultctl in a process where `import torch` fails, as in the runtime venv.
NO_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "open_clip"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None
sys.meta_path.insert(0, NoTorch())
from photovault.cli.vaultctl import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


def vaultctl(config: Path, env_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, "--config", str(config), "models", *args],
        env=dict(os.environ, **{ENV_VAR: str(env_dir)}),
        capture_output=True,
        text=True,
        timeout=1500,
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_tagger_installs_without_torch_here_and_the_daemons_tagger_runs_it(
    tmp_path: Path,
) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from photovault.analyze.base import AnalysisItem
    from photovault.analyze.context import AnalyzerContext
    from photovault.analyze.tagger import create
    from photovault.media.types import DecodedImage, PhotoMetadata
    from photovault.models.session import SessionFactory
    from photovault.models.store import ModelStore

    (tmp_path / "photos").mkdir()
    config = tmp_path / "vaultd.toml"
    config.write_text(
        'state_dir = "state"\n[server]\nsocket = "vaultd.sock"\n'
        '[[shares]]\nname = "demo"\npath = "photos"\n'
    )
    env_dir = tmp_path / "export-env"

    result = vaultctl(config, env_dir, "install", "tagger", "efficientnet-lite0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "building a separate export environment" in result.stderr
    assert (env_dir / "bin" / "python").exists()

    store = ModelStore(tmp_path / "state" / "models")
    installed = store.get("efficientnet-lite0", "tagger")
    assert list(installed.manifest.variants) == ["fp32"]
    assert (installed.path / "manifest.json").is_file()
    context = AnalyzerContext(
        tmp_path / "state", store, SessionFactory(["CPUExecutionProvider"], 2, 1, 60.0)
    )
    tagger = create({}, context)
    pixels = skimage_data.chelsea()
    image = DecodedImage(pixels=pixels, stored_size=(pixels.shape[1], pixels.shape[0]))
    (tags,) = tagger.analyze([AnalysisItem(1, Path("x.jpg"), "0", image, PhotoMetadata())])
    assert isinstance(tags, dict) and tags["tags"][0]["tag"] == "Animals|Cat"

    cleanup = vaultctl(config, env_dir, "cleanup")
    assert cleanup.returncode == 0, cleanup.stderr
    assert "GB freed" in cleanup.stdout
    assert not env_dir.exists()
