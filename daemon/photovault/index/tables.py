"""Opening the index: the LanceDB folder, its schema version and its tables.

`IndexTables` is what the writer, maintenance, the in-memory index and the
searches share: the open tables (`photos`, and `frames` for videos) and the
meta, the write lock, which columns have an index, and the camera names the
camera filter expands to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pyarrow.compute as pc

from photovault.index.schema import (
    FRAMES,
    PHOTOS,
    VIDEO_COLUMNS,
    Migration,
    ensure_version,
    frames_schema,
    photos_schema,
    write_meta,
)
from photovault.index.settings import IndexSettings

# How tables this version creates are stored (see IndexTables._open).
STORAGE_OPTIONS = {
    "new_table_data_storage_version": "2.1",
    "new_table_enable_stable_row_ids": "true",
}


class CameraNames:
    """Every camera name in the table (a superset after deletes), read on the
    first camera filter and kept up to date by writes: see filters.to_sql."""

    def __init__(self, photos: Any) -> None:
        self._photos = photos
        self._names: set[str] | None = None
        self._lock = threading.Lock()

    def names(self) -> set[str]:
        # Not the write lock (maintenance holds it for seconds). A write that
        # commits during the scan below waits for this lock to add its names.
        with self._lock:
            if self._names is None:
                t = self._photos.search().select(["camera"]).limit(None).to_arrow()
                self._names = {c for c in pc.unique(t["camera"]).to_pylist() if c}
            return set(self._names)

    def add(self, cameras: Iterable[str | None]) -> None:
        """After a commit: names written from now on."""
        with self._lock:
            if self._names is not None:
                self._names.update(c for c in cameras if c)


class IndexTables:
    """Open (and create, migrate or refuse) the index in `index_dir`."""

    def __init__(
        self,
        index_dir: Path,
        settings: IndexSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        migrations: dict[int, Migration] | None = None,
    ) -> None:
        self.dir = Path(index_dir)
        self.settings = settings
        self.clock = clock
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(str(self.dir))
        self.meta = ensure_version(
            self.dir, self.db, vector_dim=settings.vector_dim, migrations=migrations
        )
        self.photos = self._open(PHOTOS, photos_schema(settings.vector_dim))
        # An index made by a development build of schema 5 (before `text_times`
        # and `person_times`) gets the video columns it lacks, as the migration
        # gives a version 4 index (empty: rows get them when next written).
        have = set(self.photos.schema.names)
        if lacking := [f for f in VIDEO_COLUMNS if f.name not in have]:
            self.photos.add_columns(lacking)
        #: Each sampled video frame's vector (schema 5; created empty by its migration).
        self.frames = self._open(FRAMES, frames_schema(settings.vector_dim))
        #: Held by every write and by maintenance; a backup holds it while it copies.
        self.write_lock = threading.RLock()
        #: Columns that have an index ("vector", "search_text", filter columns).
        self.indexes: set[str] = set()
        self.refresh_index_names()
        self.cameras = CameraNames(self.photos)

    def _open(self, name: str, schema: pa.Schema) -> Any:
        if name in self.db.list_tables().tables:
            return self.db.open_table(name)
        if name == PHOTOS:
            # Row ids survive compaction only in tables created with them;
            # the in-memory index fetches hits by row id only then.
            self.meta["stable_row_ids"] = True
            write_meta(self.dir, self.meta)
        # Lance file format 2.1, not lancedb 0.40's default 2.2: hit columns and
        # row takes read faster. Stable row ids: compaction then leaves the scalar
        # and full-text indexes alone instead of rewriting them for moved rows
        # (figures in bench/README.md). Older tables keep their layout.
        return self.db.create_table(name, schema=schema, storage_options=dict(STORAGE_OPTIONS))

    def refresh_index_names(self) -> None:
        self.indexes = {cfg.columns[0] for cfg in self.photos.list_indices()}

    @property
    def has_ann(self) -> bool:
        return "vector" in self.indexes

    @property
    def stable_row_ids(self) -> bool:
        return bool(self.meta.get("stable_row_ids"))

    def partitions(self) -> int | None:
        """Partitions of the vector index; None for one built before they were recorded."""
        value = self.meta.get("ann_partitions")
        return int(value) if value is not None else None

    def stored_ids(self) -> Any:
        t = self.photos.search().select(["id"]).limit(None).to_arrow()
        return t["id"].to_numpy()
