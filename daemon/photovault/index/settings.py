"""Tuning knobs of the search index, shared by every part of it.

The defaults are what bench/search.py measured (figures in bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IndexSettings:
    """How the index writes, maintains and searches."""

    vector_dim: int = 512
    # Unused since index schema 3 (the index keeps no face table); accepted so
    # callers that still pass it keep working.
    face_dim: int = 512
    # Vectors before the ANN index is built. IVF_SQ builds in ~2 s at 20k rows
    # on 2 cores, while exact search at 50k costs ~100 ms, so build early.
    ann_threshold: int = 20_000
    ann_retrain_growth: float = 2.0  # retrain centroids once vectors grew by this factor
    ann_partitions: int | None = None  # None: one per partition_rows vectors
    partition_rows: int = 8_192  # LanceDB's own target; it joins partitions under 25%
    nprobes: int = 20
    refine_factor: int = 2
    exact_below: int = 2_000  # indexes without recorded partitions: exact search up to this
    flush_rows: int = 4096  # bulk backfills; the pipeline's trickle flushes on time
    flush_seconds: float = 2.0
    # Compact and fold new rows into the indexes after this many writes (each is
    # a fragment), or this many rows (unindexed rows are searched flat, which
    # costs latency), or this long after the last time when anything was written.
    # Folding costs time in proportion to the table (7-30 s at 1M photos), so a
    # large table waits for a fraction of its size; a bulk load then spends a
    # bounded share of its time on it (a 1M-photo load wrote 13% faster at 20%
    # than at 10%; searches during the load scan the rows not folded in yet).
    optimize_after_writes: int = 64
    optimize_after_rows: int = 20_000
    optimize_growth: float = 0.2  # ... or this fraction of the table, if more
    optimize_seconds: float = 300.0
    optimize_idle_seconds: float = 10.0  # ... or, with optimize_after_rows new, after a pause
    # Older table versions are deleted by optimize. Queries read the newest one and
    # backups hold writes, so a short time suffices; 600 s kept 26-28 GiB on disk
    # during a 1M-photo bulk load for a 2.7 GB table.
    keep_versions_seconds: float = 120.0
    scalar_index_rows: int = 20_000  # table size at which filter columns get indexes
    # Unfiltered semantic searches use the in-memory index (memann.py) once it
    # is loaded; `memory_nprobe` cells of ~500 vectors are scanned.
    memory_ann: bool = True
    memory_nprobe: int = 16
    # Cells (and in-memory searches) from this many vectors: below it LanceDB's
    # 20 probes of 8,192-row partitions cover every partition.
    memory_train_rows: int = 163_840
    rowid_refresh_rows: int = 4_096  # row ids learnt per tick after writes
