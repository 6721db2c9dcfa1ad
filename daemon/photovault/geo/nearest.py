"""Nearest points on the unit sphere, by one numpy pass over them.

In place of scipy's k-d tree: importing `scipy.spatial` costs vaultd 39 MiB
for the rest of its life (bench/rss.py), more than the place data itself once
that is unloaded at rest. The sets searched are small (a country's towns, at
most ~17k for the US; the ~5.5k large cities), so a pass over all of them is
~0.1 ms a lookup, within the geocoder's budget (bench/places.py).
"""

from __future__ import annotations

import numpy as np


class SpherePoints:
    """Unit vectors (n x 3) searched by chord length (straight-line distance)."""

    def __init__(self, xyz: np.ndarray) -> None:
        self.xyz = np.ascontiguousarray(xyz, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.xyz)

    def _squared(self, point: np.ndarray) -> np.ndarray:
        diff = self.xyz - np.asarray(point, dtype=np.float64).reshape(1, 3)
        return np.einsum("ij,ij->i", diff, diff)

    def nearest(self, point: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chords, indices) of the k nearest points, nearest first (fewer if fewer exist)."""
        d2 = self._squared(point)
        k = min(k, len(d2))
        if k <= 0:
            return np.empty(0), np.empty(0, dtype=np.int64)
        part = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
        order = part[np.argsort(d2[part], kind="stable")]
        return np.sqrt(d2[order]), order.astype(np.int64)

    def within(self, point: np.ndarray, chord: float) -> tuple[np.ndarray, np.ndarray]:
        """(indices, chords) of the points within `chord` of `point`, in index order."""
        d2 = self._squared(point)
        idx = np.flatnonzero(d2 <= chord * chord)
        return idx, np.sqrt(d2[idx])
