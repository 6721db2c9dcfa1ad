"""Where the in-memory vector index (memann.py) keeps its rows: cells.

A cell is one contiguous block per column (int8 codes, scale, photo id,
LanceDB row id, capture time, camera code) with spare capacity, so a probe
is one int8 matrix product and an append is amortised O(1); a deleted row is
a tombstone (id -1, scale 0) until its cell is compacted. Also here: the
exact vectors a load holds until the first training (`ExactVectors`).
Why apart: storage layout is one job, and the index, its training and its
search (annsearch.py) all read these arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from photovault.index.annquant import unit

NO_TIME = np.iinfo(np.int64).min  # no capture time: no date filter matches


class Rows(NamedTuple):
    """Rows on their way into a cell (arrays of one length)."""

    codes: np.ndarray
    scale: np.ndarray
    ids: np.ndarray
    rowids: np.ndarray
    taken: np.ndarray
    camera: np.ndarray


class ExactVectors:
    """The vectors a load read before the first training (float16: rounding
    ~1e-4, far below int8's), so those rows are coded once, from what LanceDB
    holds, rather than decoded and coded again. Writes committed meanwhile
    are held too, after what the scan read: the newest vector wins."""

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids.append(np.asarray(ids, np.int64))
        self.vectors.append(unit(vectors).astype(np.float16))

    def freeze(self) -> None:
        ids = np.concatenate(self.ids) if self.ids else np.zeros(0, np.int64)
        vecs = np.concatenate(self.vectors) if self.vectors else np.zeros((0, 1), np.float16)
        self.ids, self.vectors = [], []
        # the last of an id wins, as in `MemoryAnn._put_locked`
        _, last = np.unique(ids[::-1], return_index=True)
        pick = len(ids) - 1 - last
        order = pick[np.argsort(ids[pick], kind="stable")]
        self._sorted = (ids[order], vecs[order])

    def fill(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Overwrite `vectors` rows whose exact vector is held."""
        assert self._sorted is not None
        known, held = self._sorted
        if not known.size:
            return
        pos = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        hit = known[pos] == ids
        vectors[hit] = held[pos[hit]]


class Cell:
    """One cell's rows, contiguous so a probe is one int8 matrix product.
    Arrays have spare capacity: appends are amortised O(1)."""

    __slots__ = ("camera", "codes", "dead", "ids", "n", "rowids", "scale", "taken")
    ARRAYS = ("codes", "scale", "ids", "rowids", "taken", "camera")

    def __init__(self, dim: int, capacity: int = 16) -> None:
        self.codes = np.zeros((capacity, dim), np.int8)
        self.scale = np.zeros(capacity, np.float32)  # 0: a dead row (scores 0 * x)
        self.ids = np.full(capacity, -1, np.int64)
        self.rowids = np.full(capacity, -1, np.int64)
        self.taken = np.full(capacity, NO_TIME, np.int64)  # local capture time, us
        self.camera = np.full(capacity, -1, np.int32)  # code of the camera name
        self.n = 0
        self.dead = 0

    def append(self, rows: Rows) -> int:
        need = self.n + len(rows.ids)
        if need > len(self.ids):
            cap = max(need, len(self.ids) * 3 // 2)
            for name in self.ARRAYS:
                old = getattr(self, name)
                new = np.zeros((cap, *old.shape[1:]), old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        lo = self.n
        for name in self.ARRAYS:
            getattr(self, name)[lo:need] = getattr(rows, name)
        self.n = need
        return lo

    def rows(self, keep: np.ndarray) -> Rows:
        return Rows(*(getattr(self, name)[keep] for name in self.ARRAYS))

    def live(self) -> np.ndarray:
        return np.flatnonzero(self.ids[: self.n] >= 0)


def camera_codes(cameras: list[str | None] | None, known: dict[str, int]) -> np.ndarray | None:
    """Each camera name's code (-1: none), adding new names to `known`."""
    if cameras is None:
        return None
    out = np.empty(len(cameras), np.int32)
    for i, name in enumerate(cameras):
        if not name:
            out[i] = -1
            continue
        code = known.get(name)
        if code is None:
            code = known[name] = len(known)
        out[i] = code
    return out
