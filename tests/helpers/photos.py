"""Make real image files for tests: distinct content per seed, camera-like when asked."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(
    seed: int, size: tuple[int, int] = (320, 240), quality: int = 85, exif: Image.Exif | None = None
) -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    img = (base + rng.normal(0, 40, (h, w, 3))).clip(0, 255).astype(np.uint8)
    img[: h // 4, : w // 4] = rng.integers(0, 255, 3)  # a seed-specific block
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, exif=exif or Image.Exif())
    return buf.getvalue()


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (320, 240)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(seed, size))
    return path
