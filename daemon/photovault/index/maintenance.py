"""Keeping the index fast: flushing on time, compaction and building indexes.

Every buffered flush leaves a fragment, and unindexed rows are searched flat,
so `maintain()` compacts on a schedule and folds new rows into the indexes.
It is also where indexes appear: the full-text index from the first write,
scalar indexes for the filter columns on large tables, and a vector index
(IVF_SQ, one partition per `partition_rows` vectors) once a table holds
`ann_threshold` vectors; exact search below that is fast and exact. Why
these choices: bench/README.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import timedelta
from typing import Any

from lancedb.index import Bitmap, BTree, IvfSq, LabelList

from photovault.index.memory import MemoryLoader
from photovault.index.schema import write_meta
from photovault.index.tables import IndexTables
from photovault.index.writes import WriteBuffer, ensure_fts, fts_missing

log = logging.getLogger(__name__)


class Maintenance:
    """Runs `tick()` about once a second on its own thread; `maintain()` on demand."""

    def __init__(self, tables: IndexTables, writes: WriteBuffer, memory: MemoryLoader) -> None:
        self._t = tables
        self._w = writes
        self._memory = memory
        self._last_optimize = tables.clock()
        self._table_rows = tables.photos.count_rows()  # as of the last maintenance
        self.ticker: threading.Thread | None = None
        self._stop = threading.Event()
        #: Why the last flush or maintenance failed; None once one succeeds.
        self.last_error: str | None = None

    def tick(self) -> None:
        """Flush a stale buffer, maintain when due."""
        w = self._w
        w.flush_if_due()
        self._memory.refresh()
        s = self._t.settings
        now = self._t.clock()
        written = w.writes_since_optimize > 0
        new_rows = w.rows_since_optimize
        due = (
            w.writes_since_optimize >= s.optimize_after_writes
            or new_rows >= max(s.optimize_after_rows, s.optimize_growth * self._table_rows)
            or (written and now - self._last_optimize >= s.optimize_seconds)
            # The end of a bulk load: don't leave many rows unindexed until then.
            or (
                new_rows >= s.optimize_after_rows
                and w.pending() == 0
                and now - w.last_write >= s.optimize_idle_seconds
            )
        )
        if due:
            self.maintain()

    def start(self, interval: float = 1.0) -> None:
        """Run `tick()` on a daemon thread until `stop()`."""
        if self.ticker is not None:
            return

        def loop() -> None:
            delay = interval
            while not self._stop.wait(delay):
                try:
                    self.tick()
                except Exception as exc:
                    # Back off (a full disk fails every write); the buffer keeps the rows.
                    if self.last_error is None:
                        log.exception("index maintenance failed; will retry")
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    delay = min(delay * 2, 30.0)
                    continue
                if self.last_error is not None:
                    log.info("index writes work again")
                self.last_error = None
                delay = interval

        self.ticker = threading.Thread(target=loop, name="index", daemon=True)
        self.ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self.ticker is not None:
            self.ticker.join(timeout=30)
            self.ticker = None

    def maintain(self) -> dict[str, Any]:
        """Compact, bring indexes up to date, build the ones now due. Returns what it did."""
        did: dict[str, Any] = {}
        t = self._t
        with t.write_lock:
            self._w.flush()
            keep = timedelta(seconds=t.settings.keep_versions_seconds)
            t0 = time.perf_counter()
            t.photos.optimize(cleanup_older_than=keep)
            if t.frames.count_rows():  # each video's write is a fragment there too
                t.frames.optimize(cleanup_older_than=keep)
            did["optimize_s"] = round(time.perf_counter() - t0, 3)
            self._w.writes_since_optimize = 0
            self._w.rows_since_optimize = 0
            self._last_optimize = t.clock()
            did.update(self._ensure_indexes())
            self._table_rows = t.photos.count_rows()
        log.info("index maintenance: %s", did)
        return did

    def _ensure_indexes(self) -> dict[str, Any]:
        t = self._t
        s = t.settings
        did: dict[str, Any] = {}
        rows = t.photos.count_rows()
        if rows and fts_missing(t):
            ensure_fts(t)
            did["fts"] = "built"
        if rows >= s.scalar_index_rows:
            wanted = {
                "id": BTree(),
                "camera": Bitmap(),  # few distinct names; filters become IN lists
                "taken_local": BTree(),
                "tag_keys": LabelList(),
                "people_keys": LabelList(),
                "place_keys": LabelList(),
                "lat": BTree(),
            }
            for column, cfg in wanted.items():
                if column not in t.indexes:
                    t.photos.create_index(column, config=cfg, replace=True)
                    t.indexes.add(column)
                    did.setdefault("scalar", []).append(column)
        vectors = t.photos.count_rows("vector IS NOT NULL")
        trained = int(t.meta.get("ann_trained_vectors") or 0)
        build = vectors >= s.ann_threshold and (
            not t.has_ann or vectors >= trained * s.ann_retrain_growth
        )
        if build:
            t0 = time.perf_counter()
            partitions = s.ann_partitions or max(1, math.ceil(vectors / s.partition_rows))
            cfg = IvfSq(distance_type="cosine", num_partitions=partitions)
            t.photos.create_index("vector", config=cfg, replace=True)
            t.indexes.add("vector")
            t.meta["ann_trained_vectors"] = vectors
            t.meta["ann_partitions"] = partitions
            write_meta(t.dir, t.meta)
            did["ann"] = {"vectors": vectors, "build_s": round(time.perf_counter() - t0, 1)}
            log.info(
                "built the vector index over %d vectors in %.1f s",
                vectors,
                time.perf_counter() - t0,
            )
        return did
