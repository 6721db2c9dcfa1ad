"""Fixtures for the sidecar tests: real exiftool and exiv2, no mocks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from photovault.sidecar.writer import SidecarWriter


@pytest.fixture(scope="module")
def writer() -> Iterator[SidecarWriter]:
    """One writer, hence one exiftool process, per test module."""
    if not shutil.which("exiftool"):
        pytest.skip("exiftool is not installed")
    with SidecarWriter() as w:
        yield w
