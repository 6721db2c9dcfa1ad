"""Distances and density clustering of face embeddings: numpy BLAS, nothing else.

Why DBSCAN and not k-means: the number of people in a library is unknown and
most faces (passers-by) belong to nobody worth naming; density clustering
leaves those as noise instead of forcing them into someone. It is also what
we converge to: the people store re-clusters *all* faces in every pass, so
the result does not depend on the order in which photos arrived.

Why not scikit-learn's DBSCAN: it first collects every point's neighbourhood
(its documentation warns of O(n * neighbours) memory), and in a family
library one person may own 20k faces that all lie within `eps` of each
other: 20k x 20k neighbour indices are gigabytes. Here distances are
computed block by block with one BLAS matrix product per block pair (float32;
only the upper triangle, since distances are symmetric), each block's
neighbour pairs are folded at once into a running labelling of connected
components, and nothing of size n x n is ever held.
100k faces take one pass over ~5e9 pairs (bench/faces.py).

One pass suffices for `min_neighbours` <= 3, the default: a face that is not
a core has at most one other neighbour, so it can only hang off a cluster,
never bridge two; the clusters are then the connected components of the
whole neighbour graph that contain a core. Larger `min_neighbours` take a
second pass over the block pairs that had neighbours, joining cores only
and giving each border face to its nearest core.

Thresholds, per model (distance at which two faces count as the same person):

* Dlib (default): euclidean. dlib's authors use 0.6 for verification
  (99.38% on LFW) and 0.5 for clustering (`face_clustering.py`); on our
  labelled photos (tests/fixtures/faces/labelled) same-person pairs sit at
  median 0.37, max 0.53, different people at 0.66 and more. We use 0.5 for
  both clustering and joining.
* deepface models: cosine distance; deepface's verification thresholds are
  ArcFace 0.68, Facenet512 0.30, SFace 0.593. Use ~0.8x of them for
  clustering, since a wrong merge costs more than a missed one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np

Metric = Literal["euclidean", "cosine"]
BLOCK = 1024
#: Rows per block of the clustering scan: 2048 x 2048 float32 scores are 16 MiB.
SCAN_BLOCK = 2048
#: A face is a cluster core when this many faces (itself included) lie within eps.
CORE_NEIGHBOURS = 3

#: Called between block rows of a long scan with the fraction done (0..1); it may
#: sleep (to leave the CPU to ingest) or raise (to cancel the scan).
Pace = Callable[[float], None]


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
            assert b_sq is not None
            sq = (part * part).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * dots
            dist = np.sqrt(np.maximum(sq, 0.0))
        yield start, dist


def pairwise(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray:
    """Full distance matrix; for small inputs (tests, the bench)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    return np.vstack([d for _, d in distance_blocks(a, b, metric)])


def _operands(x: np.ndarray, eps: float, metric: Metric) -> tuple[np.ndarray, np.ndarray, float]:
    """(left, right, threshold): rows i and j are neighbours iff left[i] @ right[j] >= threshold.

    Euclidean: with x centred (distances do not change, float32 keeps more digits)
    left = [2x, -|x|^2, -1] and right = [x, 1, |x|^2] give left.right = -d^2, so one
    matrix product per block and one comparison decide every pair.
    """
    if metric == "cosine":
        unit = as_matrix(x, "cosine")
        return unit, unit, 1.0 - eps
    x64 = np.asarray(x, dtype=np.float64)
    x64 = x64 - x64.mean(axis=0)
    sq = (x64 * x64).sum(axis=1)[:, None]
    one = np.ones_like(sq)
    left = np.hstack([2.0 * x64, -sq, -one]).astype(np.float32)
    right = np.hstack([x64, one, sq]).astype(np.float32)
    return left, right, -eps * eps


class _Components:
    """Connected components of n points, merged in by batches of edges (numpy only).

    Each batch is labelled by min-label propagation with pointer jumping, not
    scipy.sparse.csgraph: importing that pulls in scipy.linalg and stays in
    vaultd for its life (+19 MiB at rest on a NAS, bench/rss.py), for a few
    lines of numpy that need a handful of passes per batch.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.root = np.arange(n, dtype=np.int64)  # point -> smallest point of its component

    def join(self, u: np.ndarray, v: np.ndarray) -> None:
        ru, rv = self.root[u], self.root[v]
        differ = ru != rv
        if not differ.any():
            return
        ru, rv = ru[differ], rv[differ]
        nodes = np.unique(np.concatenate([ru, rv]))
        iu, iv = np.searchsorted(nodes, ru), np.searchsorted(nodes, rv)
        label = _component_minimum(len(nodes), iu, iv)
        relabel = np.arange(self.n, dtype=np.int64)
        relabel[nodes] = nodes[label]  # nodes are sorted: the smallest index is the smallest root
        self.root = relabel[self.root]


def _component_minimum(size: int, iu: np.ndarray, iv: np.ndarray) -> np.ndarray:
    """For each of `size` nodes joined by edges (iu, iv): the smallest node of its component.

    Labels only decrease and always name a node of the same component; at the
    fixed point both ends of every edge share a label and each label labels
    itself, so a component's label is its smallest node.
    """
    label = np.arange(size, dtype=np.int64)
    while True:
        low = np.minimum(label[iu], label[iv])
        nxt = label.copy()
        np.minimum.at(nxt, iu, low)
        np.minimum.at(nxt, iv, low)
        nxt = nxt[nxt]  # pointer jumping: a label's own label, halving chains each pass
        if np.array_equal(nxt, label):
            return label
        label = nxt


def density_labels(
    x: np.ndarray,
    eps: float,
    metric: Metric,
    min_neighbours: int = CORE_NEIGHBOURS,
    *,
    block: int = SCAN_BLOCK,
    pace: Pace | None = None,
) -> np.ndarray:
    """DBSCAN labels (int64, -1 for noise), exact, in blocks; see the module docstring.

    Clusters are numbered 0..k-1 in order of their first row, so the same input
    gives the same labels, and the same set of rows in any order gives the same
    partition (a border face reachable from two clusters goes to its nearest core).
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    left, right, threshold = _operands(x, eps, metric)
    t = np.float32(threshold)
    counts = np.zeros(n, dtype=np.int64)
    comps = _Components(n)
    one_pass = min_neighbours <= 3
    touched: list[tuple[int, int]] = []
    starts = list(range(0, n, block))
    work = len(starts) * (len(starts) + 1) / 2
    done = 0
    for i0 in starts:
        li = left[i0 : i0 + block]
        for j0 in range(i0, n, block):
            near = (li @ right[j0 : j0 + block].T) >= t
            as_bytes = near.view(np.uint8)
            per_row = as_bytes.sum(axis=1, dtype=np.int64)
            counts[i0 : i0 + block] += per_row
            if j0 == i0:  # every row is its own neighbour here
                sub_rows = sub_cols = np.flatnonzero(per_row > 1)
            else:
                per_col = as_bytes.sum(axis=0, dtype=np.int64)
                counts[j0 : j0 + block] += per_col
                sub_rows, sub_cols = np.flatnonzero(per_row), np.flatnonzero(per_col)
            # Most blocks hold few neighbour pairs: look for them only where they are.
            rows, cols = np.nonzero(near[np.ix_(sub_rows, sub_cols)])
            rows, cols = sub_rows[rows], sub_cols[cols]
            if j0 == i0:
                keep = rows < cols
                rows, cols = rows[keep], cols[keep]
            if len(rows):
                touched.append((i0, j0))
                if one_pass:
                    comps.join(rows + i0, cols + j0)
            done += 1
        if pace is not None:
            pace(done / work)
    core = counts >= min_neighbours
    if one_pass:
        root = comps.root
        has_core = np.zeros(n, dtype=bool)
        has_core[root[core]] = True
        raw = np.where(has_core[root], root, -1)
    else:
        raw = _cores_and_borders(left, right, t, core, touched, block, pace)
    return _number_by_first_row(raw)


def _cores_and_borders(
    left: np.ndarray,
    right: np.ndarray,
    t: np.float32,
    core: np.ndarray,
    touched: list[tuple[int, int]],
    block: int,
    pace: Pace | None,
) -> np.ndarray:
    """Second pass for min_neighbours > 3: join cores only; borders go to the nearest core."""
    n = len(left)
    comps = _Components(n)
    best = np.full(n, -np.inf, dtype=np.float32)
    nearest = np.full(n, -1, dtype=np.int64)

    def offer(rows: np.ndarray, scores: np.ndarray, cols: np.ndarray) -> None:
        """rows (non-core) are within eps of cols (cores) with these scores."""
        better = scores > best[rows]
        best[rows[better]] = scores[better]
        nearest[rows[better]] = cols[better]

    for k, (i0, j0) in enumerate(touched):
        s = left[i0 : i0 + block] @ right[j0 : j0 + block].T
        rows, cols = np.nonzero(s >= t)
        gi, gj = rows + i0, cols + j0
        both = core[gi] & core[gj]
        comps.join(gi[both], gj[both])
        scores = s[rows, cols]
        a = ~core[gi] & core[gj]
        offer(gi[a], scores[a], gj[a])
        b = core[gi] & ~core[gj]
        offer(gj[b], scores[b], gi[b])
        if pace is not None and k % 16 == 15:
            pace(k / len(touched))
    raw = np.full(n, -1, dtype=np.int64)
    raw[core] = comps.root[core]
    border = ~core & (nearest >= 0)
    raw[border] = comps.root[nearest[border]]
    return raw


def _number_by_first_row(raw: np.ndarray) -> np.ndarray:
    """Component ids (any integers, -1 noise) -> 0..k-1 in order of first appearance."""
    labels = np.full(len(raw), -1, dtype=np.int64)
    member = raw >= 0
    if not member.any():
        return labels
    ids, first = np.unique(raw[member], return_index=True)
    order = np.argsort(first, kind="stable")
    number = np.empty(len(ids), dtype=np.int64)
    number[order] = np.arange(len(ids))
    labels[member] = number[np.searchsorted(ids, raw[member])]
    return labels


def dbscan(
    x: np.ndarray, eps: float, metric: Metric, min_neighbours: int = CORE_NEIGHBOURS
) -> list[int]:
    """Labels 0..k-1 per row, -1 for noise (`density_labels` as a list)."""
    return [int(v) for v in density_labels(x, eps, metric, min_neighbours)]


def nearest_rows(
    queries: np.ndarray, candidates: np.ndarray, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest candidate, its distance) per query row; -1/inf without candidates."""
    index = np.full(len(queries), -1, dtype=np.int64)
    dist = np.full(len(queries), np.inf)
    if len(candidates) == 0 or len(queries) == 0:
        return index, dist
    for start, d in distance_blocks(queries, candidates, metric):
        best = d.argmin(axis=1)
        index[start : start + len(d)] = best
        dist[start : start + len(d)] = d[np.arange(len(d)), best]
    return index, dist


def pairs_within(
    a: np.ndarray, b: np.ndarray, radius: float, metric: Metric, block: int = SCAN_BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (row of a, row of b, distance) with distance <= radius, float32, in blocks."""
    out_r, out_c, out_d = [np.zeros(0, dtype=np.int64)] * 2 + [np.zeros(0)]
    if len(a) == 0 or len(b) == 0:
        return out_r, out_c, out_d
    left, right, threshold = _operands(np.vstack([a, b]), radius, metric)
    left, right = left[: len(a)], right[len(a) :]
    rows_all, cols_all, dist_all = [], [], []
    for i0 in range(0, len(a), block):
        for j0 in range(0, len(b), block):
            s = left[i0 : i0 + block] @ right[j0 : j0 + block].T
            rows, cols = np.nonzero(s >= threshold)
            if len(rows):
                score = s[rows, cols].astype(np.float64)
                dist = 1.0 - score if metric == "cosine" else np.sqrt(np.maximum(-score, 0.0))
                rows_all.append(rows + i0)
                cols_all.append(cols + j0)
                dist_all.append(dist)
    if not rows_all:
        return out_r, out_c, out_d
    return np.concatenate(rows_all), np.concatenate(cols_all), np.concatenate(dist_all)


def pair_scores(true: list[object], predicted: list[int]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against true identities.

    A pair of faces is "predicted same" when both carry the same label >= 0
    (noise is nobody's); precision = correct same-pairs / predicted same-pairs,
    recall = correct same-pairs / true same-pairs. Empty denominators give 1.0.
    Counted from the contingency table, so 100k faces take well under a second.
    """

    def pairs(counter: Counter[Any]) -> int:
        return sum(c * (c - 1) // 2 for c in counter.values())

    both = Counter((t, p) for t, p in zip(true, predicted, strict=True) if p >= 0)
    tp = pairs(both)
    predicted_same = pairs(Counter(p for p in predicted if p >= 0))
    true_same = pairs(Counter(true))
    precision = tp / predicted_same if predicted_same else 1.0
    recall = tp / true_same if true_same else 1.0
    return precision, recall


def pair_agreement(a: list[int], b: list[int]) -> float:
    """Fraction of face pairs that two clusterings treat alike (both same or both
    different person; noise is nobody's): the Rand index, 1.0 for identical partitions."""
    n = len(a)
    total = n * (n - 1) // 2
    if total == 0:
        return 1.0

    def pairs(counter: Counter[Any]) -> int:
        return sum(c * (c - 1) // 2 for c in counter.values())

    same_a = pairs(Counter(x for x in a if x >= 0))
    same_b = pairs(Counter(y for y in b if y >= 0))
    same_both = pairs(Counter((x, y) for x, y in zip(a, b, strict=True) if x >= 0 and y >= 0))
    disagree = same_a + same_b - 2 * same_both
    return 1.0 - disagree / total
