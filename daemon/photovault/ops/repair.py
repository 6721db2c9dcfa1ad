"""Keeps the search index in step with the catalog, which is the truth.

The index sink writes rows as photos are done; the follower applies the
catalog's deletes and moves; `repair` makes the index agree with the catalog
after anything that may have lost writes (a kill -9 lost the write buffer, a
move or delete was not followed) and rewrites rows whose people or keywords
changed. Runs at start, after every rescan and when a person changes names or
sidecar keywords. `check` is `vaultctl check`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from photovault.catalog.store import Catalog, FileRow
from photovault.index import IndexSink, PhotoIndex
from photovault.ops.consistency import IndexDiff, check_report, index_differences, missing_sidecars
from photovault.pipeline.worker import Photo
from photovault.problems import Problems

log = logging.getLogger(__name__)


class _IndexFollower:
    """Keeps the search index in step with the catalog's deletes and moves."""

    def __init__(self, index: PhotoIndex) -> None:
        self.index = index

    def forgotten(self, share: str, relpath: str) -> None:
        self.index.delete(share, relpath)

    def moved(self, share: str, src: str, dest: str) -> None:
        self.index.move(share, src, dest)

    def share_dropped(self, share: str) -> None:
        self.index.drop_share(share)


class IndexKeeper:
    """The index sink, the follower and the repair, for one catalog and index."""

    def __init__(
        self,
        catalog: Catalog,
        index: PhotoIndex,
        *,
        resolve: Callable[[str, str], Any],
        enrich: Callable[[str, dict[str, Any]], dict[str, Any]],
        problems: Problems,
        sidecars_enabled: Callable[[], bool],
        wake_sidecars: Callable[[], None],
    ) -> None:
        self.catalog = catalog
        self.index = index
        self.resolve = resolve
        self.enrich = enrich
        self.problems = problems
        self.sidecars_enabled = sidecars_enabled
        self.wake_sidecars = wake_sidecars
        index.on_written = catalog.mark_indexed
        self.sink = IndexSink(index, catalog.person_keywords)
        self.follower = _IndexFollower(index)
        catalog.listeners.append(self.follower)
        self._lock = threading.Lock()
        #: A repair failed: the main loop's tick starts another (`due`).
        self.wanted = False

    def replace(self, index: PhotoIndex) -> None:
        """Another index (a CLIP model of another size): rows go there from now on."""
        index.on_written = self.catalog.mark_indexed
        self.index = self.sink.index = self.follower.index = index

    def photos_from_catalog(self, rows: list[FileRow]) -> list[Photo]:
        """Catalog rows as the sinks see them (no pixels), names from the people store."""
        out = []
        for row in rows:
            content = self.catalog.content(row.sha256) if row.sha256 else None
            path = self.resolve(row.share, row.relpath)
            if content is None or path is None:
                continue
            results = self.enrich(content.sha256, content.results)
            out.append(Photo(row, path, content.sha256, content.metadata, results, None))
        return out

    def index_rows(self, rows: list[FileRow]) -> None:
        """Write the index rows of these catalog files again (the done ones), through
        the sink so that a person's sidecar keywords apply."""
        done = [r for r in rows if r.state == "done"]
        if done:
            self.sink.store(self.photos_from_catalog(done))

    def reindex(self, shas: list[str]) -> None:
        self.index_rows([r for sha in shas for r in self.catalog.files_with_content(sha)])

    def keywords_changed(self, file_ids: list[int]) -> None:
        """A person changed keywords in sidecars: rewrite those files' index rows."""
        rows = [r for i in file_ids if (r := self.catalog.get_by_id(i)) is not None]
        try:
            self.index_rows(rows)
        except Exception:
            log.exception("re-indexing %d photos after a keyword change failed", len(rows))

    def names_changed(self, shas: list[str]) -> None:
        self.wake_sidecars()
        try:
            self.reindex(shas)
        except Exception:
            log.exception("re-indexing %d photos after a name change failed", len(shas))

    def repair(self, *, sidecars: bool = False) -> IndexDiff:
        """Make the index agree with the catalog (the truth): write the rows of done
        files that are missing or stale (a kill -9 lost the write buffer, a move or
        delete was not followed) and delete rows of forgotten files. Runs at start
        and after every rescan; an empty index is simply filled. With `sidecars`
        (a rescan), sidecars we wrote that are gone from disk are written again (a
        stat per photo: not at every start)."""
        with self._lock:
            self.problems.report("index", "checking the search index against the catalog")
            try:
                diff = index_differences(self.catalog, self.index)
                # Rows the index may hold stale (re-analysed, renamed people) though
                # their content and path agree: the catalog marked them until written.
                dirty = {r.id for r in self.catalog.index_dirty(10_000_000)}
                todo = sorted(set(diff.missing) | set(diff.stale) | dirty)
                if diff.extra:
                    self.index.delete_ids(diff.extra)
                n = 0
                for lo in range(0, len(todo), 2000):
                    chunk = todo[lo : lo + 2000]
                    rows = [r for i in chunk if (r := self.catalog.get_by_id(i)) is not None]
                    self.problems.report(
                        "index",
                        f"repairing the search index: {n} of {len(todo)} photos written",
                    )
                    self.index_rows(rows)
                    n += len(chunk)
                self.index.flush()
                self.problems.clear("index")
                if sidecars and self.sidecars_enabled():
                    gone = missing_sidecars(self.catalog)
                    if gone:
                        log.info("%d sidecars we wrote are gone; writing them again", len(gone))
                        self.catalog.forget_sidecars(gone)
                        self.wake_sidecars()
                if diff or todo:
                    log.info(
                        "search index repaired from the catalog: %d missing, %d stale, %d"
                        " left over, %d written",
                        len(diff.missing),
                        len(diff.stale),
                        len(diff.extra),
                        len(todo),
                    )
                return diff
            except Exception as exc:
                self.problems.report("index", f"search index repair failed: {exc}; retrying")
                log.exception("search index repair failed")
                raise

    def repair_soon(self) -> None:
        threading.Thread(target=self._repair_logged, name="index-repair", daemon=True).start()

    def _repair_logged(self) -> None:
        try:
            self.repair()
        except Exception:
            self.wanted = True  # tick() tries again

    def check(self) -> dict[str, Any]:
        """Do catalog, index and sidecars agree? (`vaultctl check`)."""
        self.index.flush()
        return check_report(self.catalog, self.index, sidecars=self.sidecars_enabled())
