"""Distances and density clustering of face embeddings, in plain numpy.

Why DBSCAN-style and not k-means: the number of people in a library is
unknown and most faces (passers-by) belong to nobody worth naming; density
clustering leaves those as noise instead of forcing them into someone.
Why not scikit-learn: it would be a large dependency for ~40 lines, and the
incremental use (only unassigned faces are clustered, then linked to the
people that already exist) does not fit its API anyway.

Distances are computed block by block so memory stays at
`block x n` floats, not `n x n`, for large libraries.

Thresholds, per model (distance at which two faces count as the same person):

* Dlib (default): euclidean. dlib's authors use 0.6 for verification
  (99.38% on LFW) and 0.5 for clustering (`face_clustering.py`); on our
  labelled set same-person pairs sit at 0.33-0.43 and different people at
  0.80+ (bench/faces.py). We use 0.5 for both clustering and joining.
* deepface models: cosine distance; deepface's verification thresholds are
  ArcFace 0.68, Facenet512 0.30, SFace 0.593. Use ~0.8x of them for
  clustering, since a wrong merge costs more than a missed one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

Metric = Literal["euclidean", "cosine"]
BLOCK = 1024
#: A face is a cluster core when this many faces (itself included) lie within eps.
CORE_NEIGHBOURS = 3


def metric_for_model(model: str) -> Metric:
    """dlib's descriptor was trained for euclidean distance; deepface's models for cosine."""
    return "euclidean" if model == "Dlib" else "cosine"


def as_matrix(embeddings: list[list[float]] | np.ndarray, metric: Metric) -> np.ndarray:
    """float32 matrix, rows unit-normalised for cosine so a dot product is a similarity."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    if metric == "cosine" and len(x):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
    return x


def distance_blocks(
    a: np.ndarray, b: np.ndarray, metric: Metric, block: int = BLOCK
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (row offset, distances of a[offset:offset+block] to every row of b)."""
    if metric == "euclidean":  # float64: |a|^2 + |b|^2 - 2ab cancels badly in float32
        a, b = a.astype(np.float64), b.astype(np.float64)
    b_sq = (b * b).sum(axis=1) if metric == "euclidean" else None
    for start in range(0, len(a), block):
        part = a[start : start + block]
        dots = part @ b.T
        if metric == "cosine":
            dist = 1.0 - dots
        else:
            sq = (part * part).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * dots
            dist = np.sqrt(np.maximum(sq, 0.0))
        yield start, dist


def pairwise(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray:
    """Full distance matrix; for small inputs (tests, the bench)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    return np.vstack([d for _, d in distance_blocks(a, b, metric)])


def dbscan(
    x: np.ndarray, eps: float, metric: Metric, min_neighbours: int = CORE_NEIGHBOURS
) -> list[int]:
    """Labels 0..k-1 per row, -1 for noise. Deterministic: clusters are numbered
    in order of their first row, so the same input always gives the same labels."""
    n = len(x)
    labels = [-1] * n
    if n == 0:
        return labels
    neighbours: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n
    for start, dist in distance_blocks(x, x, metric):
        for i, row in enumerate(dist):
            neighbours[start + i] = np.flatnonzero(row <= eps)
    core = [len(nb) >= min_neighbours for nb in neighbours]
    next_label = 0
    for seed in range(n):
        if labels[seed] != -1 or not core[seed]:
            continue
        labels[seed] = next_label
        stack = [seed]
        while stack:
            point = stack.pop()
            for other in neighbours[point]:
                other = int(other)
                if labels[other] != -1:
                    continue
                labels[other] = next_label
                if core[other]:  # border points join but do not extend the cluster
                    stack.append(other)
        next_label += 1
    return labels


def pair_scores(true: list[object], predicted: list[int]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against true identities.

    A pair of faces is "predicted same" when both carry the same label >= 0
    (noise is nobody's); precision = correct same-pairs / predicted same-pairs,
    recall = correct same-pairs / true same-pairs. Empty denominators give 1.0.
    """
    tp = fp = fn = 0
    n = len(true)
    for i in range(n):
        for j in range(i + 1, n):
            same_true = true[i] == true[j]
            same_pred = predicted[i] >= 0 and predicted[i] == predicted[j]
            tp += same_true and same_pred
            fp += same_pred and not same_true
            fn += same_true and not same_pred
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall
