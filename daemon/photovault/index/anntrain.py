"""Retraining the in-memory vector index's cells (memann.py), the numeric
steps: the k-means sample drawn from the stored rows, and every row decoded
and matched to its new cell when the cells are regrouped.

Why apart: these read the cells (anncells.py) and the codebook (annquant.py)
only; deciding when to train, the lock and the swap to the new cells stay
with the index (`MemoryAnn._train`, `MemoryAnn._regroup`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from photovault.index.anncells import Cell, ExactVectors, Rows
from photovault.index.annquant import decode, unit

REGROUP_CANDIDATES = 32  # new cells considered for the rows of one old cell
REGROUP_BLOCK = 16_384  # rows recoded at once when cells are retrained


def sample_rows(
    cells: list[Cell],
    live: int,
    take: int,
    rng: np.random.Generator,
    means: np.ndarray | None,
    dim: int,
) -> np.ndarray:
    """Unit vectors of `take` random rows of the `live` stored in `cells`, as
    decoded (a copy: k-means runs on it without the lock)."""
    parts = [cell.live() for cell in cells]
    bounds = np.concatenate([[0], np.cumsum([len(rows) for rows in parts])])
    flat = np.sort(rng.choice(live, size=take, replace=False))
    sample = np.empty((take, dim), np.float32)
    for j, rows_live in enumerate(parts):
        m = (flat >= bounds[j]) & (flat < bounds[j + 1])
        rows = rows_live[flat[m] - bounds[j]]
        cell = cells[j]
        sample[m] = decode(cell.codes[rows], cell.scale[rows], means, j)
    norms = np.linalg.norm(sample, axis=1, keepdims=True)
    sample /= np.where(norms == 0, 1.0, norms)  # in place: 64k x 512 is 128 MB
    return sample


def regrouped(
    parts: list[tuple[Cell, np.ndarray]],
    old_centroids: np.ndarray | None,
    old_means: np.ndarray | None,
    cent: np.ndarray,
    exact: ExactVectors | None,
) -> Iterator[tuple[Rows, np.ndarray, np.ndarray | None]]:
    """The live rows of the old cells (`parts`: each cell and its live rows),
    in blocks: the rows, their vectors (decoded from the old codes, or from
    `exact` when the load still holds the vector it read) and their new cells
    among the centroids `cent` (None: score every centroid)."""
    k = len(cent)
    # Old cells go one by one, and a big one (the single cell before the
    # first training: up to `train_rows`) in blocks, so the float32
    # temporaries stay small (a 160k-row block would be ~2 GB of them).
    for j, (cell, live) in enumerate(parts):
        near = None
        if old_centroids is not None and k > REGROUP_CANDIDATES:
            # A row's new cell is one of the new centroids nearest its old
            # one: scoring those alone makes regrouping 1M rows into 2,000
            # cells ~60x cheaper than scoring every centroid.
            near = np.argpartition(-(cent @ old_centroids[j]), REGROUP_CANDIDATES - 1)
            near = near[:REGROUP_CANDIDATES]
        for lo in range(0, live.size, REGROUP_BLOCK):
            r = cell.rows(live[lo : lo + REGROUP_BLOCK])
            vecs = decode(r.codes, r.scale, old_means, j)
            if exact is not None:
                exact.fill(r.ids, vecs)
            where = None
            if near is not None:
                where = near[(unit(vecs) @ cent[near].T).argmax(axis=1)].astype(np.int32)
            yield r, vecs, where
