"""In-memory vector search for semantic queries: an IVF over int8 codes.

Why: at 1M photos LanceDB's own vector search costs 15-40 ms per query,
while scanning a few cells of int8 vectors with numpy takes ~2 ms, so a
search through the socket fits its 50 ms budget (figures: bench/README.md).

LanceDB stays the store of record; this index is derived, loaded from the
table in the background at start (memory.py) and fed every committed write
and delete. Per photo it holds a residual int8 code (the unit vector minus
its cell's mean, with its own scale), the photo id, LanceDB's stable row id,
the capture time and a camera code, so date and camera filters are answered
here too (`Facts`). Cells (spherical k-means) are trained once `train_rows`
vectors are stored and retrained when the count doubled; before that one
cell holds everything. A cell is one contiguous int8 block with spare
capacity; deleted rows are tombstones until their cell is compacted.

The work is split by job: the int8 codes and k-means (annquant.py), the
cells that hold the rows (anncells.py), the numeric steps of retraining
(anntrain.py) and the search over the cells (annsearch.py). This module is
the index itself (its state, lock, loading, writes and when to (re)train)
and re-exports the names the rest of the package imports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from photovault.index.anncells import NO_TIME, Cell, ExactVectors, Rows, camera_codes
from photovault.index.annquant import nearest_cells, quantize, spherical_kmeans, unit
from photovault.index.annsearch import (
    SCAN_BLOCK,
    AnnResult,
    Facts,
    best,
    fact_check,
    micros,
    no_result,
    probe_order,
    scan,
)
from photovault.index.anntrain import regrouped, sample_rows

__all__ = [
    "NO_TIME",
    "AnnResult",
    "AnnSettings",
    "Facts",
    "MemoryAnn",
    "micros",
    "quantize",
    "spherical_kmeans",
]

log = logging.getLogger(__name__)

ID_LIMIT = 1 << 26  # as presence.py: catalog ids are small sequential integers


@dataclass(frozen=True)
class AnnSettings:
    cell_rows: int = 500  # vectors per cell when trained
    max_cells: int = 4_096
    nprobe: int = 16
    train_rows: int = 20_000  # below this every stored vector is scanned
    retrain_growth: float = 2.0
    sample_per_cell: int = 32  # k-means training sample
    kmeans_iterations: int = 8


class MemoryAnn:
    """The derived in-memory vector index (module docstring). Thread-safe."""

    def __init__(self, dim: int, settings: AnnSettings | None = None, seed: int = 0) -> None:
        self.dim = dim
        self.settings = settings or AnnSettings()
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._cells: list[Cell] = [Cell(dim)]  # one cell: exact scan
        self._centroids: np.ndarray | None = None  # unit: assignment and probing
        self._means: np.ndarray | None = None  # codes are relative to these
        self._cameras: dict[str, int] = {}  # camera name -> code (only grows)
        self._scan_buffer = np.empty((SCAN_BLOCK, dim), np.float32)  # 4 MiB at 512-d
        self._pos_cell = np.full(0, -1, np.int32)  # id -> cell (-1: absent)
        self._pos_off = np.zeros(0, np.int32)  # id -> row within the cell
        self._live = 0
        self._trained_live = 0
        self.ready = False
        self.training = False
        self.failed: str | None = None  # why this index gave up (LanceDB answers)
        self._loading = False
        self._removed_while_loading: set[int] = set()
        self._written_while_loading: set[int] = set()
        self._exact: ExactVectors | None = None  # a load's vectors, until the first training
        self._training_now = False  # one training at a time (k-means runs unlocked)

    # -- state -----------------------------------------------------------------

    def __len__(self) -> int:
        return self._live

    @property
    def cells(self) -> int:
        c = self._centroids
        return 0 if c is None else len(c)

    def usable(self) -> bool:
        """Loaded, not given up, and not regrouping (a search would wait for it)."""
        return self.ready and self.failed is None and not self.training

    def memory_bytes(self) -> int:
        """Approximate, and without the lock: `vaultctl status` asks while a
        load or retraining holds it for many seconds."""
        rows = sum(len(c.ids) for c in list(self._cells))
        per_row = self.dim + 4 + 8 + 8 + 8 + 4  # code, scale, id, rowid, taken, camera
        return rows * per_row + self._pos_cell.nbytes + self._pos_off.nbytes

    # -- loading ---------------------------------------------------------------

    def load(
        self,
        batches: Callable[[], Iterable[tuple[Any, ...]]],
        expected: int = 0,
    ) -> None:
        """Fill from LanceDB: `batches()` yields (ids, rowids, vectors) or (ids,
        rowids, vectors, taken_us, cameras) with null vectors already dropped.
        Writes and deletes that commit meanwhile (`put`/`remove`) win over what
        the scan saw. With the `expected` row
        count, cells for that size are trained once, from the first rows."""
        with self._lock:
            self._loading = True
            self._removed_while_loading.clear()
            self._written_while_loading.clear()
            untrained = self._centroids is None and expected >= self.settings.train_rows
            self._exact = ExactVectors() if untrained else None
        try:
            for batch in batches():
                ids, rowids, vectors = batch[:3]
                ids = np.asarray(ids, np.int64)
                self._check_ids(ids)
                taken = np.asarray(batch[3], np.int64) if len(batch) > 3 else None
                cameras = list(batch[4]) if len(batch) > 4 else None
                with self._lock:
                    newer = self._removed_while_loading | self._written_while_loading
                    if newer:
                        keep = ~np.isin(ids, np.fromiter(newer, np.int64, len(newer)))
                        ids, rowids, vectors = ids[keep], rowids[keep], vectors[keep]
                        taken = None if taken is None else taken[keep]
                        cameras = (
                            None
                            if cameras is None
                            else [c for c, k in zip(cameras, keep, strict=True) if k]
                        )
                    if ids.size:
                        vectors = np.asarray(vectors, np.float32)
                        if self._exact is not None:
                            self._exact.add(ids, vectors)
                        self._put_locked(
                            ids, vectors, rowids, taken, camera_codes(cameras, self._cameras)
                        )
                    due = self._exact is not None and self._live >= min(
                        self._training_sample(expected), expected
                    )
                if due:
                    self._train(expected)  # hands `_exact` to the regrouping
            with self._lock:
                self._exact = None
                self._loading = False
                self._removed_while_loading.clear()
                self._written_while_loading.clear()
            self.maintain()
            self.ready = True
        except Exception as exc:
            self._give_up(f"loading failed: {exc}")
            raise

    def _check_ids(self, ids: np.ndarray) -> None:
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= ID_LIMIT):
            raise ValueError(f"photo id outside [0, {ID_LIMIT})")

    def _give_up(self, why: str) -> None:
        with self._lock:
            self.failed = why
            self.ready = False
            self._loading = False
            self._cells = [Cell(self.dim)]
            self._centroids = None
            self._means = None
            self._exact = None
            self._pos_cell = np.full(0, -1, np.int32)
            self._pos_off = np.zeros(0, np.int32)
            self._live = 0
        log.warning("in-memory vector index off, LanceDB answers instead: %s", why)

    # -- writes ----------------------------------------------------------------

    def put(
        self,
        ids: np.ndarray,
        vectors: list[Any],
        rowids: np.ndarray | None = None,
        taken: list[datetime | None] | None = None,
        cameras: list[str | None] | None = None,
    ) -> None:
        """Committed rows: store their vectors (None: the row has none now),
        capture times and cameras. Ignored before `load` starts: the load reads
        them from the table."""
        if self.failed or not (self._loading or self.ready):
            return
        ids = np.asarray(ids, dtype=np.int64)
        try:
            self._check_ids(ids)
        except ValueError as exc:
            self._give_up(str(exc))
            return
        # As records.photos_table: a vector of the wrong length or with NaNs is stored null.
        flat = [None if v is None else np.asarray(v, np.float32).reshape(-1) for v in vectors]
        flat = [
            v if v is not None and v.size == self.dim and np.isfinite(v).all() else None
            for v in flat
        ]
        has = np.array([v is not None for v in flat], dtype=bool)
        with self._lock:
            if self._loading:
                self._written_while_loading.update(int(i) for i in ids)
            self._remove_locked(ids[~has])
            if has.any():
                vecs = np.stack([v for v in flat if v is not None])
                if self._exact is not None:
                    self._exact.add(ids[has], vecs)
                rid = None if rowids is None else np.asarray(rowids, np.int64)[has]
                when = (
                    None
                    if taken is None
                    else np.array(
                        [micros(t) for t, h in zip(taken, has, strict=True) if h], np.int64
                    )
                )
                cams = (
                    None if cameras is None else [c for c, h in zip(cameras, has, strict=True) if h]
                )
                self._put_locked(ids[has], vecs, rid, when, camera_codes(cams, self._cameras))

    def remove(self, ids: Iterable[int]) -> None:
        if self.failed or not (self._loading or self.ready):
            return
        arr = np.fromiter((int(i) for i in ids), dtype=np.int64)
        with self._lock:
            if self._loading:
                self._removed_while_loading.update(int(i) for i in arr)
            self._remove_locked(arr)

    def set_rowids(self, ids: np.ndarray, rowids: np.ndarray) -> None:
        """Row ids learnt after a write (LanceDB assigns them at the commit)."""
        ids = np.asarray(ids, np.int64)
        rowids = np.asarray(rowids, np.int64)
        with self._lock:
            ok = (ids >= 0) & (ids < len(self._pos_cell))
            ids, rowids = ids[ok], rowids[ok]
            cells = self._pos_cell[ids]
            for i, c, r in zip(ids[cells >= 0], cells[cells >= 0], rowids[cells >= 0], strict=True):
                self._cells[c].rowids[self._pos_off[i]] = r

    def unknown_rowids(self, limit: int) -> np.ndarray:
        """Ids of stored rows whose LanceDB row id is not known yet."""
        out: list[np.ndarray] = []
        got = 0
        with self._lock:
            for cell in self._cells:
                m = (cell.rowids[: cell.n] < 0) & (cell.ids[: cell.n] >= 0)
                if m.any():
                    out.append(cell.ids[: cell.n][m])
                    got += int(m.sum())
                    if got >= limit:
                        break
        return np.concatenate(out)[:limit] if out else np.zeros(0, np.int64)

    def _remove_locked(self, ids: np.ndarray) -> None:
        ids = ids[(ids >= 0) & (ids < len(self._pos_cell))]
        if not ids.size:
            return
        cells = self._pos_cell[ids]
        present = cells >= 0
        for i, c in zip(ids[present], cells[present], strict=True):
            cell = self._cells[c]
            off = self._pos_off[i]
            cell.ids[off] = -1
            cell.scale[off] = 0.0
            cell.dead += 1
        self._pos_cell[ids[present]] = -1
        self._live -= int(present.sum())

    def _put_locked(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        rowids: np.ndarray | None,
        taken: np.ndarray | None = None,
        camera: np.ndarray | None = None,
        where: np.ndarray | None = None,
    ) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape}, index expects length {self.dim}")
        # the last of repeated ids wins
        _, last = np.unique(ids[::-1], return_index=True)
        pick = np.sort(len(ids) - 1 - last)
        ids, vectors = ids[pick], vectors[pick]
        n = len(ids)
        rowids = np.full(n, -1, np.int64) if rowids is None else np.asarray(rowids)[pick]
        taken = np.full(n, NO_TIME, np.int64) if taken is None else np.asarray(taken)[pick]
        camera = np.full(n, -1, np.int32) if camera is None else np.asarray(camera)[pick]
        where = None if where is None else where[pick]
        self._remove_locked(ids)
        unit_vectors = unit(vectors)
        top = int(ids.max()) + 1
        if top > len(self._pos_cell):
            size = max(top, int(len(self._pos_cell) * 1.25) + 1024)
            pc = np.full(size, -1, np.int32)
            po = np.zeros(size, np.int32)
            pc[: len(self._pos_cell)] = self._pos_cell
            po[: len(self._pos_off)] = self._pos_off
            self._pos_cell, self._pos_off = pc, po
        # Residual coding (as FAISS's IVF "by residual"): a cell stores each
        # vector minus the cell's mean, which is shorter than the vector, so the
        # same int8 steps are finer: at 1M photos in 500 scenes recall@20 went
        # 0.973 -> 0.992 (the loss was all rounding: more probes did not help).
        # CLIP vectors share a large mean, so they should gain at least as much.
        if self._centroids is None:
            where = np.zeros(len(ids), np.int32)
            codes, scale = quantize(unit_vectors)
        else:
            if where is None:
                where = nearest_cells(unit_vectors, self._centroids)
            assert self._means is not None
            codes, scale = quantize(unit_vectors - self._means[where])
        order = np.argsort(where, kind="stable")
        bounds = np.flatnonzero(np.diff(where[order])) + 1
        for group in np.split(order, bounds):
            c = int(where[group[0]])
            lo = self._cells[c].append(
                Rows(
                    codes[group],
                    scale[group],
                    ids[group],
                    rowids[group],
                    taken[group],
                    camera[group],
                )
            )
            self._pos_cell[ids[group]] = c
            self._pos_off[ids[group]] = np.arange(lo, lo + len(group), dtype=np.int32)
        self._live += len(ids)

    # -- maintenance -------------------------------------------------------------

    def _next_training(self) -> float:
        s = self.settings
        if self._centroids is None:
            return s.train_rows
        return self._trained_live * s.retrain_growth

    def maintain(self) -> None:
        """Train or retrain cells when due; compact cells with many dead rows."""
        with self._lock:
            if self.failed or self._training_now:
                return
            due = self._live >= self._next_training()
            if not due:
                for c, cell in enumerate(self._cells):
                    if cell.dead > max(64, cell.n // 4):
                        self._compact_cell(c)
        if due:
            self._train()

    def _compact_cell(self, c: int) -> None:
        old = self._cells[c]
        keep = old.live()
        new = Cell(self.dim, max(16, len(keep)))
        new.append(old.rows(keep))
        self._cells[c] = new
        self._pos_off[new.ids[: new.n]] = np.arange(new.n, dtype=np.int32)

    def _cells_for(self, rows: int) -> int:
        s = self.settings
        return int(min(s.max_cells, max(1, rows // s.cell_rows)))

    def _training_sample(self, rows: int) -> int:
        return self._cells_for(rows) * self.settings.sample_per_cell

    def _train(self, planned: int = 0) -> None:
        """(Re)train cells for max(`planned`, stored) rows and regroup every row.
        Called without the lock. k-means runs on a copied sample without it,
        so writes and searches go on meanwhile; regrouping holds it, and
        `usable()` is False then, so searches go to LanceDB instead of
        waiting. Retraining 1M rows into 2,000 cells (once per doubling of the
        library) took 29 s with one BLAS thread; writes waited at most 9 s."""
        with self._lock:
            if self._training_now or self.failed:
                return
            self._training_now = True
            planned = max(planned, self._live)
            k = self._cells_for(planned)
            take = min(self._live, k * self.settings.sample_per_cell)
            sample = sample_rows(self._cells, self._live, take, self._rng, self._means, self.dim)
            k = min(k, len(sample))  # rows deleted since training fell due
            if not k:
                self._training_now = False
                return
        try:
            cent, means = spherical_kmeans(sample, k, self.settings.kmeans_iterations, self._rng)
            del sample
            with self._lock:
                if self.failed:
                    return
                exact, self._exact = self._exact, None
                if exact is not None:
                    exact.freeze()
                self.training = True
                try:
                    self._regroup(max(planned, self._live), cent, means, exact)
                finally:
                    self.training = False
        finally:
            self._training_now = False

    def _regroup(
        self, planned: int, cent: np.ndarray, means: np.ndarray, exact: ExactVectors | None
    ) -> None:
        """Move every row to its cell under the new centroids, recoded against
        the new cell's mean. A row is recoded from its code (int8 rounding
        twice, until the next load), or from `exact` when the load still holds
        the vector it read."""
        k = len(cent)
        parts = [(cell, cell.live()) for cell in self._cells]
        old_centroids, old_means = self._centroids, self._means
        self._centroids, self._means = cent, means
        self._cells = [Cell(self.dim, max(16, self._live * 5 // (4 * k))) for _ in range(k)]
        self._pos_cell[:] = -1
        self._live = 0
        for r, vecs, where in regrouped(parts, old_centroids, old_means, cent, exact):
            self._put_locked(r.ids, vecs, r.rowids, r.taken, r.camera, where)
        del parts
        self._trained_live = planned
        log.info("in-memory vector index: %d vectors in %d cells", self._live, k)

    # -- search ----------------------------------------------------------------

    def search(
        self, query: np.ndarray, k: int, nprobe: int | None = None, facts: Facts | None = None
    ) -> AnnResult:
        """The `k` stored vectors nearest `query` by cosine (approximately, once
        cells exist), best first; with `facts`, only rows matching them. A
        filtered search probes cells nearest first until it has `k` matches
        from at least `nprobe` cells (a filter matching one photo scans every
        cell's facts, but scores only that photo)."""
        q = np.asarray(query, np.float32).reshape(-1)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        with self._lock:
            check = fact_check(facts, self._cameras)
            if check is False:
                return no_result()
            nprobe = nprobe or self.settings.nprobe
            order, p = probe_order(self._centroids, q, nprobe, check is not None)
            scanned = scan(self._cells, order, p, q, k, self._means, check, self._scan_buffer)
        return best(scanned, k)
