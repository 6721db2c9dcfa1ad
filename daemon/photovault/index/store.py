"""The search index: LanceDB tables in `<state_dir>/index/`, kept in step with the catalog.

`PhotoIndex` is the one object the rest of photovault holds. It assembles
the parts, each in its own module, and passes calls through:

- tables.py       opening, creating and migrating the table (schema.py)
- writes.py       the write buffer: upsert, delete, move, full-text index upkeep
- maintenance.py  the ticker: timed flushes, compaction, building indexes
- memory.py       loading and status of the in-memory vector index (memann.py)
- search.py       `Hit` and the search strategies
- frames.py       video frames: their rows and the search for a video's moment
- similar.py      photos that look like a given one
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from photovault.index.filters import Filters
from photovault.index.frames import FrameVectors
from photovault.index.maintenance import Maintenance
from photovault.index.memann import AnnSettings, MemoryAnn
from photovault.index.memory import MemoryLoader
from photovault.index.records import FaceRecord, PhotoRecord, record_from_photo, record_from_row
from photovault.index.schema import Migration
from photovault.index.search import Hit, Searcher
from photovault.index.settings import IndexSettings
from photovault.index.similar import similar
from photovault.index.tables import IndexTables
from photovault.index.writes import WriteBuffer

log = logging.getLogger(__name__)


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
        self.settings = settings or IndexSettings()
        s = self.settings
        self._tables = IndexTables(index_dir, s, clock=clock, migrations=migrations)
        mem = MemoryAnn(
            s.vector_dim, AnnSettings(nprobe=s.memory_nprobe, train_rows=s.memory_train_rows)
        )
        frames = self._tables.frames
        self._frames = FrameVectors(
            s.vector_dim,
            lambda: frames.search().select(["id", "at", "vector"]).limit(None).to_batches(),
        )
        self._writes = WriteBuffer(self._tables, mem, self._frames)
        self._memory = MemoryLoader(self._tables, mem)
        self._maintenance = Maintenance(self._tables, self._writes, self._memory)
        self._searcher = Searcher(self._tables, self._memory, self._frames)

    # -- the open table --------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self._tables.dir

    @property
    def meta(self) -> dict[str, Any]:
        return self._tables.meta

    @property
    def photos(self) -> Any:
        """The LanceDB `photos` table."""
        return self._tables.photos

    @property
    def frames(self) -> Any:
        """The LanceDB `frames` table (video frames' vectors)."""
        return self._tables.frames

    @property
    def has_ann(self) -> bool:
        return self._tables.has_ann

    def writes_held(self) -> threading.RLock:
        """Hold index writes (a backup copies the folder meanwhile); re-entrant, so
        `flush()` may run inside."""
        return self._tables.write_lock

    @property
    def on_written(self) -> Callable[[list[int]], None] | None:
        """Told the catalog ids whose rows a flush wrote durably."""
        return self._writes.on_written

    @on_written.setter
    def on_written(self, callback: Callable[[list[int]], None] | None) -> None:
        self._writes.on_written = callback

    @property
    def last_error(self) -> str | None:
        """Why the last flush or maintenance failed; None once one succeeds."""
        return self._maintenance.last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self._maintenance.last_error = value

    @property
    def _ticker(self) -> threading.Thread | None:
        return self._maintenance.ticker  # app.py watches this thread for health

    # -- writing (writes.py) ---------------------------------------------------

    def store(self, photos: Iterable[Any]) -> None:
        """Sink entry point for the pipeline worker (see `IndexSink`)."""
        self._writes.upsert(record_from_photo(p) for p in photos)

    def upsert(self, records: Iterable[PhotoRecord]) -> None:
        """Queue rows (by catalog file id); flushes when the buffer is full."""
        self._writes.upsert(records)

    def pending(self) -> int:
        return self._writes.pending()

    def flush_if_due(self) -> int:
        return self._writes.flush_if_due()

    def flush(self) -> int:
        """Write the buffered rows now. Returns how many were written."""
        return self._writes.flush()

    def buffered_ids(self) -> list[int]:
        """Catalog ids queued in the write buffer, not yet on disk."""
        return self._writes.buffered_ids()

    def delete(self, share: str, relpath: str) -> int:
        """A file, or a folder with everything under it, left the catalog."""
        return self._writes.delete(share, relpath)

    def delete_ids(self, ids: Iterable[int]) -> int:
        return self._writes.delete_ids(ids)

    def drop_share(self, share: str) -> int:
        return self._writes.drop_share(share)

    def move(self, share: str, src: str, dest: str) -> int:
        """A file or folder was renamed within a share (catalog ids unchanged);
        rows already at the destination are replaced, as the catalog does."""
        return self._writes.move(share, src, dest)

    # -- maintenance (maintenance.py) ------------------------------------------

    def tick(self) -> None:
        """Called about once a second: flush a stale buffer, maintain when due."""
        self._maintenance.tick()

    def start(self, interval: float = 1.0) -> None:
        """Run `tick()` on a daemon thread until `close()`, and load the
        in-memory vector index on another."""
        if self._maintenance.ticker is not None:
            return
        self._memory.start()
        # Video frames load on the first search otherwise (100k frames: ~1 s).
        threading.Thread(target=self._load_frames, name="index-frames", daemon=True).start()
        self._maintenance.start(interval)

    def _load_frames(self) -> None:
        try:
            len(self._frames)
        except Exception as exc:
            log.warning("video frames not loaded (%s); the first search loads them", exc)

    def close(self) -> None:
        self._maintenance.stop()
        self._writes.flush()

    def maintain(self) -> dict[str, Any]:
        """Compact, bring indexes up to date, build the ones now due. Returns what it did."""
        return self._maintenance.maintain()

    # -- the in-memory vector index (memory.py) --------------------------------

    @property
    def memory(self) -> MemoryAnn:
        return self._memory.mem

    def load_memory(self) -> None:
        """Fill the in-memory vector index from the table; `start()` runs this on a thread."""
        self._memory.load()

    def memory_status(self) -> dict[str, Any]:
        """For `vaultctl status`: off, loading, ready or failed (with why)."""
        return self._memory.status()

    def refresh_memory(self) -> None:
        """Maintain the in-memory index and learn the row ids of rows written since."""
        self._memory.refresh()

    # -- reading (search.py, similar.py) ---------------------------------------

    def count(self, where: str | None = None) -> int:
        return self._searcher.count(where)

    def get(self, photo_id: int) -> dict[str, Any] | None:
        return self._searcher.get(photo_id)

    def search(
        self,
        text_vector: np.ndarray | None = None,
        text: str | None = None,
        filters: Filters | None = None,
        limit: int = 50,
    ) -> list[Hit]:
        """Semantic ranking when only a vector is given, full-text (BM25 over
        tags, labels, names, path words, places and recognized text, substrings
        of that text after whole words) when only text is, both fused by
        reciprocal rank when both are, newest first for filters alone. Filters,
        permissions included, hold before the limit. A video hit carries `at`,
        the moment: its best frame for a vector, else the time of the tag matched."""
        return self._searcher.search(text_vector, text, filters, limit)

    def places(self, filters: Filters | None = None) -> list[dict[str, Any]]:
        """The library's places with photo counts, country -> region -> town (of
        the photos that pass `filters`, permissions included)."""
        return self._searcher.places(filters or Filters())

    def similar(
        self,
        photo: int | str,
        limit: int = 50,
        filters: Filters | None = None,
        at: float | None = None,
    ) -> list[Hit]:
        """Photos and video moments that look like `photo` (catalog file id or
        content sha256): near-duplicates first, then by image-embedding cosine.
        For a video, `at` seconds picks the frame nearest that time (else the
        clip as a whole)."""
        return similar(self._searcher, photo, limit, filters, at)


#: file id -> (keywords a person removed, keywords they added), as the catalog's
#: `person_keywords`.
PersonKeywords = Callable[[int], tuple[set[str], list[str]]]


class IndexSink:
    """The pipeline's `Sink` for the index: `store(photos)` queues rows; the
    index's own ticker flushes and maintains. Tags are stored as the person sees
    them: `person_keywords` gives each file's sidecar decisions."""

    name = "index"

    def __init__(self, index: PhotoIndex, person_keywords: PersonKeywords | None = None) -> None:
        self.index = index
        self.person_keywords = person_keywords

    def store(self, photos: list[Any]) -> None:
        if self.person_keywords is None:
            self.index.store(photos)
            return
        keywords = self.person_keywords
        self.index.upsert(record_from_photo(p, *keywords(int(p.file.id))) for p in photos)


__all__ = [
    "FaceRecord",
    "Hit",
    "IndexSettings",
    "IndexSink",
    "PhotoIndex",
    "PhotoRecord",
    "record_from_row",
]
