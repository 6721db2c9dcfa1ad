from __future__ import annotations

from pathlib import Path

import pytest

from photovault.models.install import install
from photovault.models.store import ModelError


def test_installing_an_unknown_kind_points_to_import(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"cannot install faces models.*models import"):
        install(tmp_path, "faces", "buffalo_l")


def test_installing_an_unknown_name_lists_the_installable_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown tagger model 'resnet50'.*efficientnet-lite0"):
        install(tmp_path, "tagger", "resnet50")


def test_unknown_install_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown install option"):
        install(tmp_path, "tagger", "efficientnet-lite0", {"fast": True})
