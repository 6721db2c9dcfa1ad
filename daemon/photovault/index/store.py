"""The search index: LanceDB tables in `<state_dir>/index/`, kept in step with the catalog.

Writes are buffered (flushed every `flush_rows` rows or `flush_seconds`)
because every LanceDB write is a new fragment and a new version: 100 appends
of 32 rows leave 101 fragments and double query time (MEASUREMENTS). For the
same reason `maintain()` compacts on a schedule, and it is also where indexes
appear: a vector index once a table holds `ann_threshold` vectors (exact
search below that is fast and exact), scalar indexes for the filter columns
on large tables, the full-text index from the first write.

Vector index choice: IVF_SQ (8-bit scalar quantisation) searched with
`nprobes` and `refine_factor`. On the 2-core machine at 100k random 512-d
vectors it builds in ~11 s (IVF_PQ: ~230 s) and reaches recall@20 1.00 at
nprobes 20 + refine 5, also with a filter; IVF_PQ reached 0.29 on the same
random queries even with refine 10 because PQ codes cannot order near-ties.
Refine 2 (re-ranking 40 candidates on full vectors) kept recall@20 at 1.00
at 1M and is cheaper than 5, whose random vector reads showed in the p95.

Partitions: one per 8,192 vectors (`partition_rows`), at every size. Few
large partitions make 20 probes nearly a full scan at 100k: recall stays
>= 0.95 even on uniformly random vectors (the hardest case, tested at 100k).
Smaller partitions search faster while fresh but do not last: LanceDB's
optimize, which folds new rows into the index, joins every partition under
2,048 rows (25% of its own 8,192 target) into its neighbours and splits
those past 32k. sqrt(1M) = 1,000 partitions built fresh (ANN step 9 ms) had
become 103 after a bulk load; 2,500-row partitions ended at 186-330 after
one, and recall@20 fell to 0.81-0.97. With 8,192-row partitions a 1M bulk
load through the socket kept recall@20 1.00 (with and without a filter),
searched as fast (p50 74 vs 72 ms) and wrote 5.2k photos/s instead of 3.9k
(retraining few partitions is cheap).
Real photo embeddings cluster strongly; uniformly random ones at 1M would
need more probes (`nprobes`).

Filtered vector searches use the ANN index with a prefilter, first with the
same `nprobes` as unfiltered ones; only when that finds fewer than the asked
number of matches do they probe further partitions (`maximum_nprobes`, up to
all of them), so a filter matching one photo still finds it. LanceDB's
`maximum_nprobes` alone kept probing far past enough matches (635 of 1,000
partitions for a filter matching half of 1M photos). On 1M clustered
photos recall@20 against exact search stayed 1.00 for filters matching one
photo, 1%, 10% and 50% of the library (after-2020 filter: 170 -> 31 ms;
camera + date with the camera bitmap index: 255 -> 34 ms, on a fresh
1,000-partition index). Only an index built before the number of partitions
was recorded still counts and scans up to `exact_below`.

Deletes and moves flush the buffer first, so a write queued before a delete
can never resurrect the row after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, Bitmap, BTree, IvfSq, LabelList

from photovault.index.filters import Filters, python_check, sql_string, to_sql
from photovault.index.memann import NO_TIME, AnnSettings, Facts, MemoryAnn
from photovault.index.presence import PresentIds
from photovault.index.records import (
    FaceRecord,
    PhotoRecord,
    faces_table,
    local_time,
    photos_table,
    record_from_photo,
    restore_path,
    storable,
)
from photovault.index.schema import (
    FACES,
    PEOPLE,
    PHOTOS,
    Migration,
    ensure_version,
    faces_schema,
    people_schema,
    photos_schema,
    write_meta,
)

log = logging.getLogger(__name__)

NEAR_DUPLICATE_BITS = 6
ALL_PARTITIONS = 1 << 20  # as `maximum_nprobes`: LanceDB stops at the last partition
# How tables this version creates are stored (see PhotoIndex._table).
STORAGE_OPTIONS = {
    "new_table_data_storage_version": "2.1",
    "new_table_enable_stable_row_ids": "true",
}

# What a result shows. Each column costs 1-3 ms of a 20-hit fetch at 1M
# photos (the content hash was dropped for that: no caller showed it).
HIT_COLUMNS = [
    "id",
    "share",
    "path",
    "abs_path",
    "taken_at",
    "tags",
    "people",
]
# What the Python-side check (filters.python_check) reads besides abs_path.
# Fetched only when there is such a check: every column costs 2-5 ms of a
# 20-hit search at 1M photos.
CHECK_COLUMNS = ["lat", "lon"]


def _columns(check: Any) -> list[str]:
    return HIT_COLUMNS if check is None else [*HIT_COLUMNS, *CHECK_COLUMNS]


@dataclass
class IndexSettings:
    """Tuning knobs; the defaults are what MEASUREMENTS and bench/search.py support."""

    vector_dim: int = 512
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


@dataclass
class Hit:
    """One search result. `score`: cosine similarity for vector searches, BM25
    for text, 0 for filters alone. `dhash_distance` is set by `similar`.
    `path` and `abs_path` are the real paths (`restore_path` of the stored form):
    a name that is not UTF-8 has its bad bytes as surrogates (os.fsencode gives
    the bytes back)."""

    id: int
    share: str
    path: str
    abs_path: str | None
    score: float
    taken_at: str | None
    tags: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    dhash_distance: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hits(table: pa.Table, scores: Sequence[float]) -> list[Hit]:
    out: list[Hit] = []
    for row, score in zip(table.to_pylist(), scores, strict=True):
        tags = sorted(row.get("tags") or [], key=lambda t: -(t.get("confidence") or 0.0))
        abs_path = row.get("abs_path")
        out.append(
            Hit(
                id=row["id"],
                share=row["share"],
                path=restore_path(row["path"]),
                abs_path=None if abs_path is None else restore_path(abs_path),
                score=float(score),
                taken_at=row.get("taken_at"),
                tags=[t["tag"] for t in tags if t.get("tag")],
                people=list(row.get("people") or []),
            )
        )
    return out


def _memory_facts(f: Filters) -> tuple[bool, Facts | None]:
    """Whether the in-memory index can answer these filters itself, and how:
    capture dates and the camera it holds; people, tags, places, paths and
    shares go to LanceDB. (A permission check runs on the hits either way.)"""
    if f.persons or f.tags or f.near_spec() is not None or f.path or f.shares is not None:
        return False, None
    if f.after is None and f.before is None and not f.camera:
        return True, None
    return True, Facts(after=f.after, before=f.before, camera=f.camera)


def _release_freed_memory() -> None:
    """Hand memory freed after a big scan back to the system: Arrow's pool and
    glibc's malloc both keep it for reuse otherwise, and vaultd's RSS would
    stay at the scan's peak."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _norm(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


class PhotoIndex:
    """Open (and create, migrate or refuse) the index in `index_dir`."""

    def __init__(
        self,
        index_dir: Path,
        settings: IndexSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        migrations: dict[int, Migration] | None = None,
    ) -> None:
        self.dir = Path(index_dir)
        self.settings = settings or IndexSettings()
        self._clock = clock
        self.dir.mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(str(self.dir))
        self.meta = ensure_version(
            self.dir,
            self._db,
            vector_dim=self.settings.vector_dim,
            face_dim=self.settings.face_dim,
            migrations=migrations,
        )
        s = self.settings
        self.photos = self._table(PHOTOS, photos_schema(s.vector_dim))
        self.faces = self._table(FACES, faces_schema(s.face_dim))
        self.people = self._table(PEOPLE, people_schema())
        self._write_lock = threading.RLock()
        self._buf_lock = threading.Lock()
        self._buffer: dict[int, PhotoRecord] = {}
        self._buffer_since: float | None = None
        self._writes_since_optimize = 0
        self._rows_since_optimize = 0
        self._last_optimize = clock()
        self._last_write = clock()
        self._table_rows = self.photos.count_rows()  # as of the last maintenance
        self._indexes: set[str] = set()
        self._refresh_index_names()
        # Face bookkeeping costs a lookup per write; skip it while no faces exist.
        self._has_faces = self.faces.count_rows() > 0
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        # Every camera name in the table (a superset after deletes), read on
        # the first camera filter and kept up to date by writes: see to_sql.
        self._cameras: set[str] | None = None
        self._cameras_lock = threading.Lock()
        self._present = PresentIds(self._stored_ids)
        self._mem = MemoryAnn(
            s.vector_dim, AnnSettings(nprobe=s.memory_nprobe, train_rows=s.memory_train_rows)
        )
        self._mem_thread: threading.Thread | None = None
        #: Told the catalog ids whose rows a flush wrote durably (the catalog
        #: then stops listing them for repair after a crash).
        self.on_written: Callable[[list[int]], None] | None = None
        #: Why the last flush or maintenance failed; None once one succeeds.
        self.last_error: str | None = None

    def _table(self, name: str, schema: pa.Schema) -> Any:
        if name in self._db.list_tables().tables:
            return self._db.open_table(name)
        if name == PHOTOS:
            # Row ids survive compaction only in tables created with them;
            # the in-memory index fetches hits by row id only then.
            self.meta["stable_row_ids"] = True
            write_meta(self.dir, self.meta)
        # Lance file format 2.1, not lancedb 0.40's default 2.2: at 1M photos a
        # vector search returning the hit columns took 20 ms instead of 36, a
        # 20-row take 12 instead of 27 (the nested `tags` column 5 instead of
        # 17). Stable row ids: compaction then leaves the scalar and full-text
        # indexes alone instead of rewriting them for the moved rows, so folding
        # 20k new rows into a 1M table took ~10 s instead of 46-69 s.
        # Tables created before keep their layout and work as they did.
        return self._db.create_table(name, schema=schema, storage_options=dict(STORAGE_OPTIONS))

    def _stored_ids(self) -> np.ndarray:
        t = self.photos.search().select(["id"]).limit(None).to_arrow()
        return t["id"].to_numpy()

    def _refresh_index_names(self) -> None:
        self._indexes = {cfg.columns[0] for cfg in self.photos.list_indices()}

    def writes_held(self) -> threading.RLock:
        """Hold index writes (a backup copies the folder meanwhile); re-entrant, so
        `flush()` may run inside."""
        return self._write_lock

    @property
    def has_ann(self) -> bool:
        return "vector" in self._indexes

    # -- writing ---------------------------------------------------------------

    def store(self, photos: Iterable[Any]) -> None:
        """Sink entry point for the pipeline worker (see `IndexSink`)."""
        self.upsert(record_from_photo(p) for p in photos)

    def upsert(self, records: Iterable[PhotoRecord]) -> None:
        """Queue rows (by catalog file id); flushes when the buffer is full."""
        full = False
        with self._buf_lock:
            for rec in records:
                self._buffer[rec.id] = rec
            if self._buffer and self._buffer_since is None:
                self._buffer_since = self._clock()
            full = len(self._buffer) >= self.settings.flush_rows
        if full:
            self.flush()

    def pending(self) -> int:
        with self._buf_lock:
            return len(self._buffer)

    def flush_if_due(self) -> int:
        with self._buf_lock:
            due = (
                self._buffer_since is not None
                and self._clock() - self._buffer_since >= self.settings.flush_seconds
            )
        return self.flush() if due else 0

    def flush(self) -> int:
        """Write the buffered rows now. Returns how many were written."""
        with self._write_lock:
            with self._buf_lock:
                records = list(self._buffer.values())
                self._buffer.clear()
                self._buffer_since = None
            if not records:
                return 0
            try:
                self._write(records)
            except Exception:
                # Put them back (newer queued versions win) so a transient
                # failure does not lose rows; the caller sees the error.
                with self._buf_lock:
                    for rec in records:
                        self._buffer.setdefault(rec.id, rec)
                    self._buffer_since = self._buffer_since or self._clock()
                raise
            self._rows_since_optimize += len(records)
            self._after_write()
            if self.on_written is not None:
                with self._buf_lock:  # a newer version queued meanwhile is not written yet
                    done = [r.id for r in records if r.id not in self._buffer]
                try:
                    self.on_written(done)
                except Exception:
                    log.warning("index: could not record %d written rows", len(done), exc_info=True)
            return len(records)

    def buffered_ids(self) -> list[int]:
        """Catalog ids queued in the write buffer, not yet on disk."""
        with self._buf_lock:
            return list(self._buffer)

    def _write(self, records: list[PhotoRecord]) -> None:
        with_faces = [(r.sha256, r.faces) for r in records if r.faces is not None and r.sha256]
        # Which of these files are already indexed (and showing which content)?
        # New photos, the common case, take a plain append, several times
        # faster than merge_insert's join; only updates pay for the merge.
        # The in-memory presence set answers for all but updates (see presence.py).
        ids = np.fromiter((r.id for r in records), dtype=np.int64, count=len(records))
        mask = self._present.present(ids)
        maybe = ids if mask is None else ids[mask]
        old_shas: set[str] = set()
        stored = 0
        if maybe.size:
            existing = (
                self.photos.search()
                .where(f"id IN ({', '.join(str(int(i)) for i in maybe)})")
                .select(["id", "sha256"])
                .limit(None)
                .to_arrow()
            )
            old_shas = {s for s in existing["sha256"].to_pylist() if s}
            stored = existing.num_rows
        data = photos_table(records, self.settings.vector_dim)
        self._present.mark(ids)  # before the commit: the set may only over-report
        if stored == 0:
            # on_bad_vectors="null": lancedb's checker counts a null vector as "wrong
            # length" and would refuse the batch; photos_table already nulls bad ones.
            self.photos.add(data, on_bad_vectors="null")
        else:
            (
                self.photos.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data, on_bad_vectors="null")
            )
        with self._cameras_lock:  # after the commit: see _camera_names
            if self._cameras is not None:
                self._cameras.update(r.camera for r in records if r.camera)
        self._mem.put(  # after the commit, as LanceDB
            ids,
            [r.vector for r in records],
            taken=[local_time(r.taken_at) for r in records],
            cameras=[r.camera for r in records],
        )
        if with_faces:
            shas = sorted({sha for sha, _ in with_faces})
            self.faces.delete(f"sha256 IN ({', '.join(sql_string(s) for s in shas)})")
            seen: set[str] = set()
            unique = [(sha, frs) for sha, frs in with_faces if not (sha in seen or seen.add(sha))]  # type: ignore[func-returns-value]
            ft = faces_table(unique, self.settings.face_dim)
            if ft.num_rows:
                self.faces.add(ft, on_bad_vectors="null")
                self._has_faces = True
            names = {
                fr.person_id: fr.person
                for _s, frs in unique
                for fr in frs
                if fr.person_id is not None and fr.person
            }
            if names:
                self._upsert_people(names)
        new_shas = {r.sha256 for r in records}
        self._drop_orphan_faces(old_shas - new_shas)
        log.debug("index: wrote %d photos", len(records))

    def _after_write(self) -> None:
        self._writes_since_optimize += 1
        self._last_write = self._clock()
        if "search_text" not in self._indexes:
            self._ensure_fts()

    def _shas_where(self, where: str) -> set[str]:
        t = self.photos.search().where(where).select(["sha256"]).limit(None).to_arrow()
        return {s for s in t["sha256"].to_pylist() if s}

    def _drop_orphan_faces(self, shas: set[str]) -> None:
        """Faces of content that no remaining file shows go with it."""
        if not shas or not self._has_faces:
            return
        listed = ", ".join(sql_string(s) for s in sorted(shas))
        still = self._shas_where(f"sha256 IN ({listed})")
        gone = sorted(shas - still)
        if gone:
            self.faces.delete(f"sha256 IN ({', '.join(sql_string(s) for s in gone)})")

    def _delete_where(self, where: str) -> int:
        gone = self.photos.search().where(where).select(["id", "sha256"]).limit(None).to_arrow()
        shas = {s for s in gone["sha256"].to_pylist() if s}
        before = self.photos.count_rows()
        self.photos.delete(where)
        removed = before - self.photos.count_rows()
        # Only rows that existed when the write lock was taken can have gone.
        self._present.clear(gone["id"].to_numpy())
        self._mem.remove(gone["id"].to_pylist())
        self._drop_orphan_faces(shas)
        self._writes_since_optimize += 1
        return removed

    @staticmethod
    def _under(share: str, relpath: str, column: str = "path") -> str:
        rel = relpath.strip("/")
        return (
            f"share = {sql_string(share)} AND ({column} = {sql_string(rel)}"
            f" OR starts_with({column}, {sql_string(rel + '/')}))"
        )

    def delete(self, share: str, relpath: str) -> int:
        """A file, or a folder with everything under it, left the catalog."""
        relpath = storable(relpath)
        with self._write_lock:
            self.flush()
            return self._delete_where(self._under(share, relpath))

    def delete_ids(self, ids: Iterable[int]) -> int:
        ids = sorted({int(i) for i in ids})
        if not ids:
            return 0
        with self._write_lock:
            self.flush()
            return self._delete_where(f"id IN ({', '.join(str(i) for i in ids)})")

    def drop_share(self, share: str) -> int:
        with self._write_lock:
            self.flush()
            return self._delete_where(f"share = {sql_string(share)}")

    def move(self, share: str, src: str, dest: str) -> int:
        """A file or folder was renamed within a share (catalog ids unchanged).

        Rows already at the destination are replaced, as the catalog does.
        """
        src, dest = storable(src).strip("/"), storable(dest).strip("/")
        with self._write_lock:
            self.flush()
            rows = (
                self.photos.search()
                .where(self._under(share, src))
                .limit(None)
                .to_arrow()
                .to_pylist()
            )
            if not rows:
                return 0
            moved: list[PhotoRecord] = []
            for row in rows:
                rec = record_from_row(row)
                tail = rec.path[len(src) :]
                new_path = dest + tail
                abs_path = rec.abs_path
                if abs_path and abs_path.endswith(rec.path):
                    abs_path = abs_path[: len(abs_path) - len(rec.path)] + new_path
                moved.append(replace(rec, path=new_path, abs_path=abs_path))
            moved_ids = {r.id for r in moved}
            # Only rows at exactly the new paths are replaced (as the catalog
            # does); other files already in a destination folder stay.
            new_paths = [r.path for r in moved]
            at_dest: list[int] = []
            for lo in range(0, len(new_paths), 500):
                listed = ", ".join(sql_string(p) for p in new_paths[lo : lo + 500])
                at_dest += (
                    self.photos.search()
                    .where(f"share = {sql_string(share)} AND path IN ({listed})")
                    .select(["id"])
                    .limit(None)
                    .to_arrow()["id"]
                    .to_pylist()
                )
            clash = sorted(set(at_dest) - moved_ids)
            if clash:
                self._delete_where(f"id IN ({', '.join(str(i) for i in clash)})")
            self._write(moved)
            self._after_write()
            return len(moved)

    # -- people ----------------------------------------------------------------

    def _upsert_people(self, names: dict[int, str | None]) -> None:
        data = pa.table(
            {
                "person_id": pa.array(list(names), pa.int64()),
                "name": pa.array(list(names.values()), pa.string()),
            },
            schema=people_schema(),
        )
        (
            self.people.merge_insert("person_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(data)
        )

    def set_person(self, person_id: int, name: str | None) -> int:
        """Name (or unname) a person; photos showing them are updated so person
        filters and full-text search see the new name. Returns photos changed."""
        with self._write_lock:
            self.flush()
            old = self.people.search().where(f"person_id = {int(person_id)}").limit(1).to_arrow()
            old_name = old["name"][0].as_py() if old.num_rows else None
            self._upsert_people({int(person_id): name})
            rows = (
                self.photos.search()
                .where(f"array_has(person_ids, {int(person_id)})")
                .limit(None)
                .to_arrow()
                .to_pylist()
            )
            changed: list[PhotoRecord] = []
            for row in rows:
                rec = record_from_row(row)
                people = [p for p in rec.people if p != old_name]
                if name:
                    people.append(name)
                changed.append(replace(rec, people=sorted(set(people))))
            if changed:
                self._write(changed)
                self._after_write()
            return len(changed)

    def faces_of(self, sha256: str) -> list[dict[str, Any]]:
        return (
            self.faces.search()
            .where(f"sha256 = {sql_string(sha256)}")
            .limit(None)
            .to_arrow()
            .to_pylist()
        )

    # -- maintenance -----------------------------------------------------------

    def tick(self) -> None:
        """Called about once a second: flush a stale buffer, maintain when due."""
        self.flush_if_due()
        self.refresh_memory()
        s = self.settings
        now = self._clock()
        written = self._writes_since_optimize > 0
        new_rows = self._rows_since_optimize
        due = (
            self._writes_since_optimize >= s.optimize_after_writes
            or new_rows >= max(s.optimize_after_rows, s.optimize_growth * self._table_rows)
            or (written and now - self._last_optimize >= s.optimize_seconds)
            # The end of a bulk load: don't leave many rows unindexed until then.
            or (
                new_rows >= s.optimize_after_rows
                and self.pending() == 0
                and now - self._last_write >= s.optimize_idle_seconds
            )
        )
        if due:
            self.maintain()

    def start(self, interval: float = 1.0) -> None:
        """Run `tick()` on a daemon thread until `close()`, and load the
        in-memory vector index on another."""
        if self._ticker is not None:
            return
        if self.settings.memory_ann and self._mem_thread is None:
            self._mem_thread = threading.Thread(
                target=self._load_memory_logged, name="index-memory", daemon=True
            )
            self._mem_thread.start()

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

        self._ticker = threading.Thread(target=loop, name="index", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=30)
            self._ticker = None
        self.flush()

    def maintain(self) -> dict[str, Any]:
        """Compact, bring indexes up to date, build the ones now due. Returns what it did."""
        did: dict[str, Any] = {}
        with self._write_lock:
            self.flush()
            keep = timedelta(seconds=self.settings.keep_versions_seconds)
            t0 = time.perf_counter()
            for table in (self.photos, self.faces, self.people):
                table.optimize(cleanup_older_than=keep)
            did["optimize_s"] = round(time.perf_counter() - t0, 3)
            self._writes_since_optimize = 0
            self._rows_since_optimize = 0
            self._last_optimize = self._clock()
            did.update(self._ensure_indexes())
            self._table_rows = self.photos.count_rows()
        log.info("index maintenance: %s", did)
        return did

    def _ensure_fts(self) -> None:
        if self.photos.count_rows() == 0:
            return
        self.photos.create_index("search_text", config=FTS(with_position=False), replace=True)
        self._indexes.add("search_text")

    def _ensure_indexes(self) -> dict[str, Any]:
        s = self.settings
        did: dict[str, Any] = {}
        rows = self.photos.count_rows()
        if rows and "search_text" not in self._indexes:
            self._ensure_fts()
            did["fts"] = "built"
        if rows >= s.scalar_index_rows:
            wanted = {
                "id": BTree(),
                "camera": Bitmap(),  # few distinct names; filters become IN lists
                "taken_local": BTree(),
                "tag_keys": LabelList(),
                "people_keys": LabelList(),
                "lat": BTree(),
            }
            for column, cfg in wanted.items():
                if column not in self._indexes:
                    self.photos.create_index(column, config=cfg, replace=True)
                    self._indexes.add(column)
                    did.setdefault("scalar", []).append(column)
        vectors = self.photos.count_rows("vector IS NOT NULL")
        trained = int(self.meta.get("ann_trained_vectors") or 0)
        build = vectors >= s.ann_threshold and (
            not self.has_ann or vectors >= trained * s.ann_retrain_growth
        )
        if build:
            t0 = time.perf_counter()
            partitions = s.ann_partitions or max(1, math.ceil(vectors / s.partition_rows))
            cfg = IvfSq(distance_type="cosine", num_partitions=partitions)
            self.photos.create_index("vector", config=cfg, replace=True)
            self._indexes.add("vector")
            self.meta["ann_trained_vectors"] = vectors
            self.meta["ann_partitions"] = partitions
            write_meta(self.dir, self.meta)
            did["ann"] = {"vectors": vectors, "build_s": round(time.perf_counter() - t0, 1)}
            log.info(
                "built the vector index over %d vectors in %.1f s",
                vectors,
                time.perf_counter() - t0,
            )
        return did

    # -- reading ---------------------------------------------------------------

    def count(self, where: str | None = None) -> int:
        return self.photos.count_rows(where)

    def get(self, photo_id: int) -> dict[str, Any] | None:
        t = self.photos.search().where(f"id = {int(photo_id)}").limit(1).to_arrow()
        return t.to_pylist()[0] if t.num_rows else None

    def search(
        self,
        text_vector: np.ndarray | None = None,
        text: str | None = None,
        filters: Filters | None = None,
        limit: int = 50,
    ) -> list[Hit]:
        """Semantic ranking when a vector is given, full-text (BM25 over tags,
        labels, names, path words) when only text is, newest first for filters
        alone. Filters, permissions included, hold before the limit."""
        f = filters or Filters()
        where = self._where(f)
        check = python_check(f)
        if limit <= 0:
            return []
        memory, facts = _memory_facts(f)
        if text_vector is not None and memory and self._memory_serves():
            q = _norm(text_vector)
            cols = _columns(check)
            table = self._collect(lambda k: self._memory_query(q, k, cols, facts), check, limit)
            return _hits(table, (1.0 - table["_distance"].to_numpy()).tolist())
        if text_vector is not None:
            q = _norm(text_vector)
            exact = self._exact(where)
            cols = _columns(check)
            table = self._collect(
                lambda k: self._vector_query(q, where, k, exact, cols), check, limit
            )
            return _hits(table, (1.0 - table["_distance"].to_numpy()).tolist())
        if text is not None and text.strip():
            if "search_text" not in self._indexes:
                return []
            table = self._collect(
                lambda k: self._text_query(text, where, k, _columns(check)), check, limit
            )
            return _hits(table, table["_score"].to_numpy().tolist())
        return self._filter_only(where, check, limit)

    def _where(self, f: Filters) -> str | None:
        return to_sql(f, self._camera_names() if f.camera else None)

    def _camera_names(self) -> set[str]:
        # Not the write lock (maintenance holds it for seconds). A write that
        # commits during the scan below waits for this lock to add its names.
        with self._cameras_lock:
            if self._cameras is None:
                t = self.photos.search().select(["camera"]).limit(None).to_arrow()
                self._cameras = {c for c in pc.unique(t["camera"]).to_pylist() if c}
            return set(self._cameras)

    def _partitions(self) -> int | None:
        value = self.meta.get("ann_partitions")  # None: an index built before it was kept
        return int(value) if value is not None else None

    def _exact(self, where: str | None) -> bool:
        """Whether a vector search must bypass the ANN index (module docstring)."""
        if not self.has_ann:
            return True
        if where is None:
            return False
        if self._partitions() is not None:
            return False  # probes go on until enough matches are found
        return self.count(where) <= self.settings.exact_below

    def _vector_query(
        self, q: np.ndarray, where: str | None, k: int, exact: bool, columns: list[str]
    ) -> pa.Table:
        b = (
            self.photos.search(q, vector_column_name="vector")
            .distance_type("cosine")
            .limit(k)
            .select([*columns, "_distance"])
        )
        if where:
            b = b.where(where, prefilter=True)
        if exact:
            return b.bypass_vector_index().to_arrow()
        b = b.nprobes(self.settings.nprobes).refine_factor(self.settings.refine_factor)
        if not where or self._partitions() is None:
            return b.to_arrow()
        # A filtered search first probes as many partitions as an unfiltered
        # one; only when that finds fewer than k matches does it go on probing
        # (up to every partition) until it has them. LanceDB's own
        # `maximum_nprobes` alone probed 635 of 1,000 partitions for a filter
        # matching half of 1M photos (170 ms; this way 31 ms, same recall).
        first = b.to_arrow()
        if first.num_rows >= k:
            return first
        # Every partition: LanceDB splits large ones, so there may be more than built.
        return b.maximum_nprobes(ALL_PARTITIONS).to_arrow()

    # -- the in-memory vector index -------------------------------------------------

    @property
    def memory(self) -> MemoryAnn:
        return self._mem

    def load_memory(self) -> None:
        """Fill the in-memory vector index from the table (memann.py); searches
        use it once this returns. `start()` runs it on a thread."""
        dim = self.settings.vector_dim

        def batches() -> Iterable[tuple[Any, ...]]:
            q = (
                self.photos.search()
                .select(["id", "vector", "taken_local", "camera"])
                .with_row_id(True)
                .limit(None)
            )
            for n, b in enumerate(q.to_batches(16_384)):  # each costs ~6x its size briefly
                if n % 8 == 7:
                    _release_freed_memory()  # else the scan's buffers pile up (1M: +0.9 GB)
                valid = b["vector"].is_valid()
                if not pc.any(valid).as_py():
                    continue
                b = b.filter(valid)
                vectors = b["vector"].flatten().to_numpy().reshape(-1, dim)
                ids = b["id"].to_numpy()
                rowids = b["_rowid"].to_numpy().astype(np.int64)
                if not self.meta.get("stable_row_ids"):
                    rowids = np.full(len(ids), -1, np.int64)
                taken = pc.fill_null(b["taken_local"].cast(pa.int64()), NO_TIME).to_numpy()
                yield ids, rowids, vectors, taken, b["camera"].to_pylist()

        t0 = time.perf_counter()
        self._mem.load(batches, expected=self.photos.count_rows())
        _release_freed_memory()
        log.info(
            "in-memory vector index: %d vectors, %d cells, %.0f MiB, loaded in %.1f s",
            len(self._mem),
            self._mem.cells,
            self._mem.memory_bytes() / 2**20,
            time.perf_counter() - t0,
        )

    def _memory_serves(self) -> bool:
        # Below `memory_train_rows` LanceDB's search scans every partition
        # anyway (exact up to SQ rounding, recall 1.00 even on random vectors);
        # the in-memory index takes over once it has cells.
        return self._mem.usable() and self._mem.cells > 0

    def memory_status(self) -> dict[str, Any]:
        """For `vaultctl status`: off, loading, ready or failed (with why)."""
        m = self._mem
        if not self.settings.memory_ann:
            state = "off"
        elif m.failed:
            state = "failed"
        elif m.ready:
            state = "ready"
        else:
            state = "loading" if self._mem_thread is not None else "not loaded"
        return {
            "state": state,
            "serving": self._memory_serves(),
            "reason": m.failed,
            "vectors": len(m),
            "cells": m.cells,
            "memory_mib": round(m.memory_bytes() / 2**20, 1),
        }

    def _load_memory_logged(self) -> None:
        try:
            self.load_memory()
        except Exception as exc:
            log.warning("in-memory vector index not loaded (%s); LanceDB answers searches", exc)

    def refresh_memory(self) -> None:
        """Maintain the in-memory index and learn the row ids of rows written
        since (LanceDB assigns them at the commit). Skipped while writes run."""
        if not self._mem.usable():
            return
        self._mem.maintain()
        if not self.meta.get("stable_row_ids"):
            return
        ids = self._mem.unknown_rowids(self.settings.rowid_refresh_rows)
        if not ids.size or not self._write_lock.acquire(blocking=False):
            return
        try:
            t = (
                self.photos.search()
                .where(f"id IN ({', '.join(str(int(i)) for i in ids)})")
                .select(["id"])
                .with_row_id(True)
                .limit(None)
                .to_arrow()
            )
            self._mem.set_rowids(t["id"].to_numpy(), t["_rowid"].to_numpy().astype(np.int64))
        finally:
            self._write_lock.release()

    def _memory_query(
        self, q: np.ndarray, k: int, columns: list[str], facts: Facts | None = None
    ) -> pa.Table:
        """The in-memory index's k best, with their columns from LanceDB, in rank
        order. Scores come from the int8 codes of the residuals (recall@20 0.98-0.99
        at 1M clustered photos). Re-ranking 2k candidates on their stored
        vectors, as LanceDB's `refine_factor` does, was left out: fetching 40 rows
        with their vectors took 15 ms at 1M photos, 20 rows without them 11."""
        r = self._mem.search(q, k, facts=facts)
        cols = [*dict.fromkeys(["id", *columns])]
        if not r.ids.size:
            empty = self.photos.schema.empty_table().select(columns)
            return empty.append_column("_distance", pa.array([], pa.float32()))
        parts: list[pa.Table] = []
        known = r.rowids >= 0
        if known.any():
            try:
                parts.append(
                    self.photos.take_row_ids([int(x) for x in r.rowids[known]])
                    .select(cols)
                    .to_arrow()
                )
            except Exception as exc:  # a row id gone since: fetch those by id below
                log.debug("take by row id failed (%s); fetching by id", exc)
        # A row id may be stale (the row was rewritten since): whatever did not
        # come back under its photo id is fetched by id.
        got = set(parts[0]["id"].to_pylist()) if parts else set()
        missing = [int(i) for i in r.ids if int(i) not in got]
        if missing:
            parts.append(
                self.photos.search()
                .where(f"id IN ({', '.join(str(i) for i in missing)})")
                .select(cols)
                .limit(len(missing))
                .to_arrow()
            )
        rows = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        pos: dict[int, int] = {}
        for i, v in enumerate(rows["id"].to_pylist()):
            pos.setdefault(v, i)
        keep = [
            (pos[i], 1.0 - float(sc))
            for i, sc in zip(r.ids.tolist(), r.scores, strict=True)
            if i in pos
        ]
        out = rows.take(pa.array([p for p, _ in keep], pa.int64())).select(columns)
        return out.append_column("_distance", pa.array([d for _, d in keep], pa.float32()))

    def _text_query(self, text: str, where: str | None, k: int, columns: list[str]) -> pa.Table:
        b = (
            self.photos.search(text, query_type="fts", fts_columns="search_text")
            .limit(k)
            .select([*columns, "_score"])
        )
        if where:
            b = b.where(where, prefilter=True)
        return b.to_arrow()

    @staticmethod
    def _collect(fetch: Callable[[int], pa.Table], check: Any, limit: int) -> pa.Table:
        """Fetch ranked candidates; with a Python-side check, over-fetch and
        widen until `limit` pass or the candidates run out."""
        if check is None:
            return fetch(limit)
        k = max(limit * 4, 64)
        while True:
            t = fetch(k)
            kept = t.filter(pa.array(check(t))) if t.num_rows else t
            if kept.num_rows >= limit or t.num_rows < k:
                return kept.slice(0, limit)
            k *= 4

    def _filter_only(self, where: str | None, check: Any, limit: int) -> list[Hit]:
        b = self.photos.search().select(["id", "taken_local", "path", "lat", "lon", "abs_path"])
        if where:
            b = b.where(where)
        t = b.limit(None).to_arrow()
        if check is not None and t.num_rows:
            t = t.filter(pa.array(check(t)))
        if t.num_rows == 0:
            return []
        order = pc.sort_indices(t, sort_keys=[("taken_local", "descending"), ("path", "ascending")])
        ids = t["id"].take(order).slice(0, limit).to_pylist()
        rows = self._rows_by_id(ids)
        return _hits(rows, [0.0] * rows.num_rows)

    def _rows_by_id(self, ids: list[int]) -> pa.Table:
        if not ids:
            return self.photos.schema.empty_table().select(HIT_COLUMNS)
        t = (
            self.photos.search()
            .where(f"id IN ({', '.join(str(i) for i in ids)})")
            .select(HIT_COLUMNS)
            .limit(len(ids))
            .to_arrow()
        )
        pos = {v: i for i, v in enumerate(t["id"].to_pylist())}
        return t.take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))

    def similar(
        self, photo: int | str, limit: int = 50, filters: Filters | None = None
    ) -> list[Hit]:
        """Photos that look like `photo` (catalog file id or content sha256):
        near-duplicates (dHash within 6 bits) first, then by image-embedding cosine.
        The photo itself (that file) is left out; other copies of it are not."""
        where_self = (
            f"id = {int(photo)}" if isinstance(photo, int) else f"sha256 = {sql_string(photo)}"
        )
        src = (
            self.photos.search()
            .where(where_self)
            .select(["id", "sha256", "dhash_int", "vector"])
            .limit(1)
            .to_arrow()
        )
        if src.num_rows == 0:
            raise KeyError(f"no indexed photo {photo!r}")
        me = src.to_pylist()[0]
        f = filters or Filters()
        where = self._where(f)
        check = python_check(f)
        # The photo itself is dropped after retrieval rather than by an `id !=`
        # prefilter: a prefilter turns LanceDB's flat search into a slow
        # row-by-row one, and dropping one row from limit + 1 costs nothing.
        # Near-duplicates by dHash are found over the whole (filtered) table:
        # a re-encoded copy must come first even if the vectors rank it lower.
        dups: dict[int, int] = {}
        if me.get("dhash_int") is not None:
            mine = np.array([me["dhash_int"]], dtype=np.int64).view(np.uint64)[0]
            cond = f"({where}) AND dhash_int IS NOT NULL" if where else "dhash_int IS NOT NULL"
            cand = (
                self.photos.search().select(["id", "dhash_int"]).where(cond).limit(None).to_arrow()
            )
            if cand.num_rows:
                bits = cand["dhash_int"].to_numpy(zero_copy_only=False).astype(np.int64)
                # unsigned view: bitwise_count of a signed value counts its |x|
                dist = np.bitwise_count(bits.view(np.uint64) ^ mine)
                cand_ids = cand["id"].to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(dist <= NEAR_DUPLICATE_BITS):
                    if int(cand_ids[i]) != me["id"]:
                        dups[int(cand_ids[i])] = int(dist[i])
            if dups and check is not None:
                # Only the few near-duplicates need the Python-side check.
                listed = ", ".join(str(i) for i in dups)
                rows = (
                    self.photos.search()
                    .where(f"id IN ({listed})")
                    .select(["id", "lat", "lon", "abs_path"])
                    .limit(None)
                    .to_arrow()
                )
                keep = {int(i) for i in rows.filter(pa.array(check(rows)))["id"].to_pylist()}
                dups = {i: d for i, d in dups.items() if i in keep}
        hits: list[Hit] = []
        cos: dict[int, float] = {}
        if me.get("vector") is not None:
            q = _norm(me["vector"])
            exact = self._exact(where)
            cols = _columns(check)
            t = self._collect(
                lambda k: self._vector_query(q, where, k, exact, cols),
                check,
                limit + 1 + len(dups),
            )
            for h in _hits(t, (1.0 - t["_distance"].to_numpy()).tolist()):
                if h.id != me["id"]:
                    cos[h.id] = h.score
                    hits.append(h)
        missing = [i for i in dups if i not in cos]
        if missing:
            rows = self._rows_by_id(missing)
            extra = _hits(rows, [0.0] * rows.num_rows)
            if me.get("vector") is not None:
                vecs = (
                    self.photos.search()
                    .where(f"id IN ({', '.join(str(i) for i in missing)})")
                    .select(["id", "vector"])
                    .limit(len(missing))
                    .to_arrow()
                    .to_pylist()
                )
                q = _norm(me["vector"])
                for r in vecs:
                    if r["vector"] is not None:
                        cos[r["id"]] = float(_norm(r["vector"]) @ q)
                for h in extra:
                    h.score = cos.get(h.id, 0.0)
            hits.extend(extra)
        for h in hits:
            h.dhash_distance = dups.get(h.id)
        hits.sort(key=lambda h: (h.dhash_distance is None, h.dhash_distance or 0, -h.score))
        return hits[:limit]


def record_from_row(row: dict[str, Any]) -> PhotoRecord:
    """A stored row back into a record (for moves and renames, which rewrite rows)."""
    vec = row.get("vector")
    return PhotoRecord(
        id=row["id"],
        share=row["share"],
        path=row["path"],
        abs_path=row.get("abs_path"),
        sha256=row.get("sha256"),
        size=row.get("size"),
        mtime_ns=row.get("mtime_ns"),
        taken_at=row.get("taken_at"),
        lat=row.get("lat"),
        lon=row.get("lon"),
        camera=row.get("camera"),
        width=row.get("width"),
        height=row.get("height"),
        tags=list(row.get("tags") or []),
        labels=list(row.get("labels") or []),
        people=list(row.get("people") or []),
        person_ids=list(row.get("person_ids") or []),
        dhash=row.get("dhash"),
        vector=np.asarray(vec, dtype=np.float32) if vec is not None else None,
        faces=None,
    )


class IndexSink:
    """The pipeline's `Sink` for the index: `store(photos)` queues rows; the
    index's own ticker flushes and maintains."""

    name = "index"

    def __init__(self, index: PhotoIndex) -> None:
        self.index = index

    def store(self, photos: list[Any]) -> None:
        self.index.store(photos)


__all__ = ["FaceRecord", "Hit", "IndexSettings", "IndexSink", "PhotoIndex", "PhotoRecord"]
