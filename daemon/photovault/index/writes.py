"""Writing the index: a buffer of rows, deletes, moves and the full-text index.

Rows are buffered (flushed every `flush_rows` rows or `flush_seconds`)
because every LanceDB write is a new fragment and a new version; maintenance
compacts them later. Deletes and moves flush the buffer first, so a write
queued before a delete can never resurrect the row after it. Person names
are columns of the photo rows (`people`, `person_ids`, the full-text
document), written with them.

A video's row is written with its frames (frames.py), frames first (see
`_write`): its old frames are deleted and the new ones added, so writing it
twice leaves one set; deleting a file deletes its frames. The video half of
a live photo is part of its still: writing it deletes its row (if it had one)
instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np
from lancedb.index import FTS

from photovault.index.filters import sql_string
from photovault.index.frames import FrameVectors, frame_rows
from photovault.index.memann import MemoryAnn
from photovault.index.presence import PresentIds
from photovault.index.records import (
    PhotoRecord,
    photos_table,
    record_from_row,
    storable,
    wall_clock,
)
from photovault.index.tables import IndexTables

log = logging.getLogger(__name__)


#: Full-text indexes: words of the document (stemmed, stop words dropped, accents
#: folded), and 4-grams of the squashed recognized text for substring matches
#: (OCR joins words: "PERINDUSTRIANBALAKONG"). No stemming or stop words there:
#: a gram is not a word, and the query is cut into grams the same way.
FTS_INDEXES = {
    "search_text": FTS(with_position=False),
    "ocr_joined": FTS(
        with_position=False,
        base_tokenizer="ngram",
        ngram_min_length=4,
        ngram_max_length=4,
        stem=False,
        remove_stop_words=False,
    ),
}


def fts_missing(t: IndexTables) -> bool:
    return not set(FTS_INDEXES) <= t.indexes


def ensure_fts(t: IndexTables) -> None:
    """Build the full-text indexes that are missing (once there is a row)."""
    if t.photos.count_rows() == 0:
        return
    for column, cfg in FTS_INDEXES.items():
        if column not in t.indexes:
            t.photos.create_index(column, config=cfg, replace=True)
            t.indexes.add(column)


def under(share: str, relpath: str, column: str = "path") -> str:
    """SQL for a file or a folder with everything under it (stored paths)."""
    rel = relpath.strip("/")
    return (
        f"share = {sql_string(share)} AND ({column} = {sql_string(rel)}"
        f" OR starts_with({column}, {sql_string(rel + '/')}))"
    )


class WriteBuffer:
    """Queued rows by catalog file id, and the writes that change the table."""

    def __init__(self, tables: IndexTables, mem: MemoryAnn, frames: FrameVectors) -> None:
        self._t = tables
        self._mem = mem
        self._frames = frames
        #: Which file ids have rows in `frames` (videos), as `_present` for photos.
        self._with_frames = PresentIds(self._frame_ids)
        self._buf_lock = threading.Lock()
        self._buffer: dict[int, PhotoRecord] = {}
        self._buffer_since: float | None = None
        self._present = PresentIds(tables.stored_ids)
        #: Writes (fragments) and rows since maintenance last compacted.
        self.writes_since_optimize = 0
        self.rows_since_optimize = 0
        self.last_write = tables.clock()
        #: Told the catalog ids whose rows a flush wrote durably (the catalog
        #: then stops listing them for repair after a crash).
        self.on_written: Callable[[list[int]], None] | None = None

    def _frame_ids(self) -> np.ndarray:
        t = self._t.frames.search().select(["id"]).limit(None).to_arrow()
        return np.unique(t["id"].to_numpy())

    def upsert(self, records: Iterable[PhotoRecord]) -> None:
        """Queue rows (by catalog file id); flushes when the buffer is full."""
        full = False
        with self._buf_lock:
            for rec in records:
                self._buffer[rec.id] = rec
            if self._buffer and self._buffer_since is None:
                self._buffer_since = self._t.clock()
            full = len(self._buffer) >= self._t.settings.flush_rows
        if full:
            self.flush()

    def pending(self) -> int:
        with self._buf_lock:
            return len(self._buffer)

    def buffered_ids(self) -> list[int]:
        """Catalog ids queued in the write buffer, not yet on disk."""
        with self._buf_lock:
            return list(self._buffer)

    def flush_if_due(self) -> int:
        with self._buf_lock:
            due = (
                self._buffer_since is not None
                and self._t.clock() - self._buffer_since >= self._t.settings.flush_seconds
            )
        return self.flush() if due else 0

    def flush(self) -> int:
        """Write the buffered rows now. Returns how many were written."""
        with self._t.write_lock:
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
                    self._buffer_since = self._buffer_since or self._t.clock()
                raise
            self.rows_since_optimize += len(records)
            self._after_write()
            if self.on_written is not None:
                with self._buf_lock:  # a newer version queued meanwhile is not written yet
                    done = [r.id for r in records if r.id not in self._buffer]
                try:
                    self.on_written(done)
                except Exception:
                    log.warning("index: could not record %d written rows", len(done), exc_info=True)
            return len(records)

    def _write(self, records: list[PhotoRecord]) -> None:
        live = [r.id for r in records if r.live_photo_of]
        if live:
            self._forget_live_halves(live)
            records = [r for r in records if not r.live_photo_of]
            if not records:
                return
        photos = self._t.photos
        # Which of these files are already indexed? New photos, the common case,
        # take a plain append, several times faster than merge_insert's join;
        # only updates pay for the merge. The in-memory presence set answers for
        # all but updates (see presence.py).
        ids = np.fromiter((r.id for r in records), dtype=np.int64, count=len(records))
        mask = self._present.present(ids)
        maybe = ids if mask is None else ids[mask]
        stored = 0
        if maybe.size:
            stored = (
                photos.search()
                .where(f"id IN ({', '.join(str(int(i)) for i in maybe)})")
                .select(["id"])
                .limit(None)
                .to_arrow()
                .num_rows
            )
        data = photos_table(records, self._t.settings.vector_dim)
        # Frames first, then the row. Two tables, no transaction: a crash between
        # the commits must leave a disagreement the consistency check sees. It
        # compares the catalog's content hash with the row's (ops/consistency.py),
        # not frames, so the row is written last: until it commits, a replaced
        # video's row still names the old content (or a new file has no row), the
        # check finds it stale or missing and rewrites row and frames together.
        # The other order would leave a row of the new content over the old
        # content's frames (or none) that no check ever notices.
        self._write_frames(records)
        self._present.mark(ids)  # before the commit: the set may only over-report
        if stored == 0:
            # on_bad_vectors="null": lancedb's checker counts a null vector as "wrong
            # length" and would refuse the batch; photos_table already nulls bad ones.
            photos.add(data, on_bad_vectors="null")
        else:
            (
                photos.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data, on_bad_vectors="null")
            )
        self._t.cameras.add(r.camera for r in records)  # after the commit
        self._mem.put(  # after the commit, as LanceDB
            ids,
            [r.vector for r in records],
            taken=[wall_clock(r) for r in records],
            cameras=[r.camera for r in records],
        )
        log.debug("index: wrote %d photos", len(records))

    def _write_frames(self, records: list[PhotoRecord]) -> None:
        """Replace the frames of the records that say what they are (a moved
        row's record says nothing: its frames stay)."""
        told = [r for r in records if r.frames is not None]
        if not told:
            return
        ids = np.fromiter((r.id for r in told), dtype=np.int64, count=len(told))
        mask = self._with_frames.present(ids)
        old = ids if mask is None else ids[mask]
        rows = frame_rows(told, self._t.settings.vector_dim)
        if old.size:
            self._t.frames.delete(f"id IN ({', '.join(str(int(i)) for i in old)})")
            self._with_frames.clear(old)
            self._frames.remove(old)  # after the commit (the add below may fail)
        if rows.num_rows:
            self._with_frames.mark(np.unique(rows["id"].to_numpy()))
            self._t.frames.add(rows)
            self._frames.replace(ids, rows)  # after the commit

    def _forget_live_halves(self, ids: list[int]) -> None:
        """The video halves of live photos: no row (one written before the
        metadata knew is deleted)."""
        arr = np.asarray(ids, dtype=np.int64)
        mask = self._present.present(arr)
        stored = arr if mask is None else arr[mask]
        if stored.size:
            self._delete_where(f"id IN ({', '.join(str(int(i)) for i in stored)})")
        log.debug("index: %d live-photo videos left to their stills", len(ids))

    def _after_write(self) -> None:
        self.writes_since_optimize += 1
        self.last_write = self._t.clock()
        if fts_missing(self._t):
            ensure_fts(self._t)

    def _delete_where(self, where: str) -> int:
        photos = self._t.photos
        gone = photos.search().where(where).select(["id"]).limit(None).to_arrow()
        before = photos.count_rows()
        photos.delete(where)
        removed = before - photos.count_rows()
        # Only rows that existed when the write lock was taken can have gone.
        gone_ids = gone["id"].to_numpy()
        self._present.clear(gone_ids)
        self._mem.remove(gone["id"].to_pylist())
        mask = self._with_frames.present(gone_ids)
        videos = gone_ids if mask is None else gone_ids[mask]
        if videos.size:
            self._t.frames.delete(f"id IN ({', '.join(str(int(i)) for i in videos)})")
            self._with_frames.clear(videos)
            self._frames.remove(videos)
        self.writes_since_optimize += 1
        return removed

    def delete(self, share: str, relpath: str) -> int:
        """A file, or a folder with everything under it, left the catalog."""
        relpath = storable(relpath)
        with self._t.write_lock:
            self.flush()
            return self._delete_where(under(share, relpath))

    def delete_ids(self, ids: Iterable[int]) -> int:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        with self._t.write_lock:
            self.flush()
            return self._delete_where(f"id IN ({', '.join(str(i) for i in wanted)})")

    def drop_share(self, share: str) -> int:
        with self._t.write_lock:
            self.flush()
            return self._delete_where(f"share = {sql_string(share)}")

    def move(self, share: str, src: str, dest: str) -> int:
        """A file or folder was renamed within a share (catalog ids unchanged).

        Rows already at the destination are replaced, as the catalog does.
        """
        src, dest = storable(src).strip("/"), storable(dest).strip("/")
        photos = self._t.photos
        with self._t.write_lock:
            self.flush()
            rows = photos.search().where(under(share, src)).limit(None).to_arrow().to_pylist()
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
                    photos.search()
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
