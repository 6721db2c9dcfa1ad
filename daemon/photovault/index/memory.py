"""Loading the in-memory vector index (memann.py) from the table, and its status.

Searches use it once it is loaded; until then LanceDB answers. Writes feed it
directly (writes.py); this module fills it at start, keeps its cells and row
ids up to date, and says what state it is in for `vaultctl status`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from photovault.index.memann import NO_TIME, MemoryAnn
from photovault.index.tables import IndexTables

log = logging.getLogger(__name__)


def release_freed_memory() -> None:
    """Hand memory freed after a big scan back to the system: Arrow's pool and
    glibc's malloc both keep it for reuse otherwise, and vaultd's RSS would
    stay at the scan's peak."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class MemoryLoader:
    """Fills `mem` from the photos table and reports on it."""

    def __init__(self, tables: IndexTables, mem: MemoryAnn) -> None:
        self._t = tables
        self.mem = mem
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Fill the in-memory vector index from the table; searches use it once
        this returns. `start()` runs it on a thread."""
        t = self._t
        dim = t.settings.vector_dim

        def batches() -> Iterable[tuple[Any, ...]]:
            q = (
                t.photos.search()
                .select(["id", "vector", "taken_local", "camera"])
                .with_row_id(True)
                .limit(None)
            )
            for n, b in enumerate(q.to_batches(16_384)):  # each costs ~6x its size briefly
                if n % 8 == 7:
                    release_freed_memory()  # else the scan's buffers pile up (1M: +0.9 GB)
                valid = b["vector"].is_valid()
                if not pc.any(valid).as_py():
                    continue
                b = b.filter(valid)
                vectors = b["vector"].flatten().to_numpy().reshape(-1, dim)
                ids = b["id"].to_numpy()
                rowids = b["_rowid"].to_numpy().astype(np.int64)
                if not t.stable_row_ids:
                    rowids = np.full(len(ids), -1, np.int64)
                taken = pc.fill_null(b["taken_local"].cast(pa.int64()), NO_TIME).to_numpy()
                yield ids, rowids, vectors, taken, b["camera"].to_pylist()

        t0 = time.perf_counter()
        self.mem.load(batches, expected=t.photos.count_rows())
        release_freed_memory()
        log.info(
            "in-memory vector index: %d vectors, %d cells, %.0f MiB, loaded in %.1f s",
            len(self.mem),
            self.mem.cells,
            self.mem.memory_bytes() / 2**20,
            time.perf_counter() - t0,
        )

    def start(self) -> None:
        """Load on a daemon thread (once), if the settings want the index."""
        if self._t.settings.memory_ann and self._thread is None:
            self._thread = threading.Thread(
                target=self._load_logged, name="index-memory", daemon=True
            )
            self._thread.start()

    def _load_logged(self) -> None:
        try:
            self.load()
        except Exception as exc:
            log.warning("in-memory vector index not loaded (%s); LanceDB answers searches", exc)

    def serves(self) -> bool:
        # Below `memory_train_rows` LanceDB's search scans every partition
        # anyway (exact up to SQ rounding, recall 1.00 even on random vectors);
        # the in-memory index takes over once it has cells.
        return self.mem.usable() and self.mem.cells > 0

    def status(self) -> dict[str, Any]:
        """For `vaultctl status`: off, loading, ready or failed (with why)."""
        m = self.mem
        if not self._t.settings.memory_ann:
            state = "off"
        elif m.failed:
            state = "failed"
        elif m.ready:
            state = "ready"
        else:
            state = "loading" if self._thread is not None else "not loaded"
        return {
            "state": state,
            "serving": self.serves(),
            "reason": m.failed,
            "vectors": len(m),
            "cells": m.cells,
            "memory_mib": round(m.memory_bytes() / 2**20, 1),
        }

    def refresh(self) -> None:
        """Maintain the in-memory index and learn the row ids of rows written
        since (LanceDB assigns them at the commit). Skipped while writes run."""
        t = self._t
        if not self.mem.usable():
            return
        self.mem.maintain()
        if not t.stable_row_ids:
            return
        ids = self.mem.unknown_rowids(t.settings.rowid_refresh_rows)
        if not ids.size or not t.write_lock.acquire(blocking=False):
            return
        try:
            rows = (
                t.photos.search()
                .where(f"id IN ({', '.join(str(int(i)) for i in ids)})")
                .select(["id"])
                .with_row_id(True)
                .limit(None)
                .to_arrow()
            )
            self.mem.set_rowids(rows["id"].to_numpy(), rows["_rowid"].to_numpy().astype(np.int64))
        finally:
            t.write_lock.release()
