"""Video frames in the index: their rows, and the exact in-memory search over them.

A video is one row of `photos` (its clip vector is the normalised mean of its
frames) plus a row per sampled frame in `frames` (file id, seconds, vector).
A search finds the moment: each video's best frame.

Why in memory, and exact: LanceDB's flat search over 100k 512-d frames took
130-300 ms on 2 cores, numpy over the same vectors ~20 ms (float32) or a few
ms more as int8 codes (4x smaller: 100k frames ~52 MiB). Videos are few next
to photos (a frame every few seconds), so an exact scan serves where photos
need cells. LanceDB stays the store of record: this copy is loaded from
`frames` on the first search and fed every committed write and delete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from photovault.index.annquant import quantize
from photovault.index.annsearch import SCAN_BLOCK
from photovault.index.schema import frames_schema

log = logging.getLogger(__name__)

#: Frames ranked before the best frame per video is taken, per video wanted:
#: a video whose frames all look alike fills many places at the top.
FRAMES_PER_VIDEO = 16


def frame_rows(records: Sequence[Any], vector_dim: int) -> pa.Table:
    """Arrow rows for `frames`: each frame of the records that carry frames. A
    vector of the wrong size or with NaN or inf is left out (and logged)."""
    ids: list[int] = []
    ats: list[float] = []
    vecs: list[np.ndarray] = []
    for r in records:
        for at, v in r.frames or ():
            v = np.asarray(v, dtype=np.float32).reshape(-1)
            if v.shape != (vector_dim,) or not np.isfinite(v).all():
                log.warning("video %s/%s: frame vector at %.2f s ignored", r.share, r.path, at)
                continue
            ids.append(int(r.id))
            ats.append(float(at))
            vecs.append(v)
    flat = np.concatenate(vecs) if vecs else np.zeros(0, np.float32)
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.int64()),
            pa.array(ats, pa.float64()),
            pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), vector_dim),
        ],
        schema=frames_schema(vector_dim),
    )


def _columns(rows: pa.Table | pa.RecordBatch, dim: int) -> tuple[np.ndarray, ...]:
    """(ids, times, vectors) of frame rows as numpy arrays."""
    vectors = rows["vector"]
    if isinstance(vectors, pa.ChunkedArray):
        vectors = vectors.combine_chunks()
    flat = vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return (
        np.asarray(rows["id"].to_numpy(), np.int64),
        np.asarray(rows["at"].to_numpy(), np.float64),
        flat,
    )


@dataclass(frozen=True)
class Moment:
    """A video's best frame for a query: its file id, time and cosine score."""

    id: int
    at: float
    score: float


@dataclass(frozen=True)
class _Frames:
    """One immutable snapshot of the frames (replaced whole by each change)."""

    ids: np.ndarray  # int64
    ats: np.ndarray  # float64
    codes: np.ndarray  # int8 (n, dim)
    scales: np.ndarray  # float32

    @classmethod
    def empty(cls, dim: int) -> _Frames:
        return cls(
            np.zeros(0, np.int64), np.zeros(0), np.zeros((0, dim), np.int8), np.zeros(0, np.float32)
        )

    def without(self, ids: np.ndarray) -> _Frames:
        keep = ~np.isin(self.ids, ids)
        if keep.all():
            return self
        return _Frames(self.ids[keep], self.ats[keep], self.codes[keep], self.scales[keep])

    def plus(self, ids: np.ndarray, ats: np.ndarray, vectors: np.ndarray) -> _Frames:
        """These frames added (their vectors coded as int8)."""
        if not ids.size:
            return self
        codes, scales = quantize(vectors)
        return _Frames(
            np.concatenate([self.ids, ids]),
            np.concatenate([self.ats, ats]),
            np.concatenate([self.codes, codes]),
            np.concatenate([self.scales, scales]),
        )


class FrameVectors:
    """Every stored frame's vector as an int8 code, searched exactly. Thread-safe:
    changes replace the snapshot, searches read the one they started with."""

    def __init__(self, dim: int, load: Callable[[], Any]) -> None:
        self.dim = dim
        self._load = load  # () -> iterable of Arrow batches (id, at, vector)
        self._lock = threading.Lock()
        self._frames: _Frames | None = None

    def __len__(self) -> int:
        """Frames stored (loading them on the first call)."""
        return len(self._snapshot().ids)

    def _snapshot(self) -> _Frames:
        with self._lock:
            if self._frames is None:
                frames = _Frames.empty(self.dim)
                for b in self._load():
                    frames = frames.plus(*_columns(b, self.dim))
                self._frames = frames
                log.info("video frames in memory: %d", len(frames.ids))
            return self._frames

    def replace(self, ids: np.ndarray, frames: pa.Table) -> None:
        """Committed: the frames of `ids` are now `frames` (rows of those ids).
        Ignored before the first search: the load reads them from the table."""
        with self._lock:
            if self._frames is None:
                return
            self._frames = self._frames.without(ids).plus(*_columns(frames, self.dim))

    def remove(self, ids: np.ndarray) -> None:
        """Committed: these files have no frames any more."""
        with self._lock:
            if self._frames is not None:
                self._frames = self._frames.without(np.asarray(ids, np.int64))

    def scores(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(file ids, times, cosine to unit `q`) of every frame."""
        f = self._snapshot()
        out = np.empty(len(f.ids), np.float32)
        block = np.empty((SCAN_BLOCK, self.dim), np.float32)  # float32 @ float32 takes BLAS
        for lo in range(0, len(f.ids), SCAN_BLOCK):
            hi = min(len(f.ids), lo + SCAN_BLOCK)
            np.copyto(block[: hi - lo], f.codes[lo:hi], casting="unsafe")
            out[lo:hi] = (block[: hi - lo] @ q) * f.scales[lo:hi]
        return f.ids, f.ats, out

    def best(
        self,
        q: np.ndarray,
        want: int,
        keep: Callable[[list[int]], set[int]] | None = None,
    ) -> list[Moment]:
        """Up to `want` videos by their best frame for unit `q`, best first. `keep`
        gives which of some file ids pass the filters (asked once per id); the
        window of ranked frames widens until `want` pass or none are left."""
        ids, ats, s = self.scores(q)
        n = len(ids)
        if not n or want <= 0:
            return []
        passed: dict[int, bool] = {}
        m = min(n, max(want * FRAMES_PER_VIDEO, 256))
        while True:
            top = np.argpartition(-s, m - 1)[:m] if m < n else np.arange(n)
            top = top[np.argsort(-s[top], kind="stable")]
            _, first = np.unique(ids[top], return_index=True)
            best = top[np.sort(first)]  # each video's best frame, in rank order
            if keep is not None:
                ask = [int(i) for i in ids[best] if int(i) not in passed]
                if ask:
                    ok = keep(ask)
                    passed.update((i, i in ok) for i in ask)
                best = best[[passed[int(i)] for i in ids[best]]] if len(best) else best
            if len(best) >= want or m >= n:
                return [
                    Moment(int(ids[i]), float(ats[i]), float(s[i])) for i in best[:want].tolist()
                ]
            m = min(n, m * 4)

    def moment(self, q: np.ndarray, video: int) -> Moment | None:
        """The best frame of one video for unit `q` (None: it has no frames)."""
        f = self._snapshot()
        rows = np.flatnonzero(f.ids == video)
        if not rows.size:
            return None
        s = (f.codes[rows].astype(np.float32) @ q) * f.scales[rows]
        i = int(np.argmax(s))
        return Moment(video, float(f.ats[rows[i]]), float(s[i]))


def nearest_frame(frames: pa.Table, at: float) -> np.ndarray | None:
    """The vector of the frame nearest `at` seconds among one video's frames."""
    if not frames.num_rows:
        return None
    times = frames["at"].to_numpy()
    i = int(np.argmin(np.abs(times - at)))
    return np.asarray(frames["vector"][i].as_py(), dtype=np.float32)
