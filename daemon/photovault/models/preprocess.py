"""Photo -> model input: the center crop, resize and normalisation that the
tagger and CLIP share, parameterised by a model's manifest.

Runtime code beside the sessions; the install-time checks in ``models/export/``
use it too, so an exported model is checked with exactly what vaultd runs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLING = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}


def preprocess(
    pixels: np.ndarray,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    crop_fraction: float = 0.875,
    resize_mode: str = "shortest",
    interpolation: str = "bicubic",
) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 3 x size x size, center-cropped and normalised.

    ``resize_mode="squash"`` (SigLIP) resizes the whole photo to a square
    instead of cropping its center.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    if resize_mode == "squash":
        box: tuple[float, float, float, float] = (0, 0, width, height)
    else:
        crop = min(width, height) * crop_fraction
        box = ((width - crop) / 2, (height - crop) / 2, (width + crop) / 2, (height + crop) / 2)
    resample = RESAMPLING[interpolation]
    # One resample with a source box: crop and resize without an intermediate copy.
    image = Image.fromarray(pixels).resize((size, size), resample, box=box)
    x: np.ndarray = np.asarray(image, dtype=np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return x.transpose(2, 0, 1)
