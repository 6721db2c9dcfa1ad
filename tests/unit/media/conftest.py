"""Fixtures for the media tests; the image builders live in media_builders."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_builders import exif_with_orientation, quadrant_image


@pytest.fixture
def quadrant_jpeg(tmp_path: Path):
    """Factory: a JPEG with the red top-left quadrant and an optional EXIF orientation."""

    def make(
        name: str = "photo.jpg", orientation: int | None = None, size: tuple[int, int] = (400, 300)
    ) -> Path:
        path = tmp_path / name
        args: dict[str, object] = {"quality": 90}
        if orientation is not None:
            args["exif"] = exif_with_orientation(orientation)
        quadrant_image(size).save(path, "JPEG", **args)
        return path

    return make
