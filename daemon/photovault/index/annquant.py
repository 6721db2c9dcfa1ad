"""The in-memory vector index's codebook (memann.py): int8 coding of vectors
and the spherical k-means that trains its cells.

Why apart: this is the numeric part, plain functions over numpy arrays with
no state and no lock, so it reads (and can be measured) on its own; the
index, its cell storage (anncells.py) and its search (annsearch.py) call it.
"""

from __future__ import annotations

import numpy as np

ASSIGN_BLOCK = 8_192  # rows scored against every centroid at once (2,000 cells: 64 MB)


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vector symmetric int8: code * scale ~= vector (unit vectors in)."""
    v = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(v).max(axis=1)
    peak[peak == 0] = 1.0
    scale = (peak / 127.0).astype(np.float32)
    codes = np.rint(v / scale[:, None]).astype(np.int8)
    return codes, scale


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), as float32."""
    v = np.asarray(vectors, dtype=np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return v / n


def decode(codes: np.ndarray, scale: np.ndarray, means: np.ndarray | None, cell: int) -> np.ndarray:
    """The vectors a cell's codes stand for (its mean plus the residual)."""
    vecs = codes * scale[:, None]
    return vecs if means is None else vecs + means[cell]


def nearest_cells(unit_vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each unit vector's cell: the centroid of highest cosine (int32)."""
    out = np.empty(len(unit_vectors), np.int32)
    for lo in range(0, len(unit_vectors), ASSIGN_BLOCK):
        block = unit_vectors[lo : lo + ASSIGN_BLOCK]
        out[lo : lo + ASSIGN_BLOCK] = (block @ centroids.T).argmax(axis=1)
    return out


def spherical_kmeans(
    sample: np.ndarray, k: int, iterations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Unit centroids maximising cosine to their members, and each cell's
    mean member (what its rows are coded relative to: unit vector minus the
    mean is on average shorter than the vector, 1 - |mean|^2 in squared
    length; minus the unit centroid it can be longer).
    Empty cells are reseeded from the points their centroid fits worst."""
    cent = sample[rng.choice(len(sample), size=k, replace=False)].copy()
    means = cent.copy()
    assign = np.empty(len(sample), np.int64)
    fit = np.empty(len(sample), np.float32)
    for _ in range(iterations):
        for lo in range(0, len(sample), ASSIGN_BLOCK):  # 64k x 2,000 at once: 512 MB
            sims = sample[lo : lo + ASSIGN_BLOCK] @ cent.T
            assign[lo : lo + ASSIGN_BLOCK] = sims.argmax(axis=1)
            fit[lo : lo + ASSIGN_BLOCK] = sims.max(axis=1)
        del sims
        sums = np.zeros_like(cent)
        np.add.at(sums, assign, sample)
        counts = np.bincount(assign, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            worst = np.argsort(fit)[: empty.size]
            sums[empty] = sample[worst]
        means = sums / np.maximum(counts, 1)[:, None]
        cent = unit(sums)
    return cent, means.astype(np.float32)
