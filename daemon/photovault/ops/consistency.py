"""Do catalog, search index and sidecars agree? The catalog is the truth.

A `kill -9` can lose what the index still held in its write buffer, a move
or a delete the index had not yet followed, or a sidecar write in flight.
`index_differences` compares every done file of the catalog with the rows of
the index by (id, content hash, share, path) and lists what is missing,
stale or left over; vaultd repairs those at start and on rescan, and
`vaultctl check` lists them (with sidecar disagreements) for a person.

The comparison streams both sides and keeps one 64-bit digest per row in
numpy arrays (1M photos: ~16 MB), so it fits a NAS; it takes a few seconds
per million photos and runs in the background.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from photovault.catalog.store import Catalog, FileRow, display
from photovault.index.records import storable
from photovault.results import metadata_of

log = logging.getLogger(__name__)


@dataclass
class IndexDiff:
    missing: list[int] = field(default_factory=list)  # done in the catalog, no index row
    stale: list[int] = field(default_factory=list)  # index row shows other content or path
    extra: list[int] = field(default_factory=list)  # index row of a file the catalog forgot

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.extra)


def _digest(sha: str | None, share: str, path: str) -> int:
    return hash((sha or "", share, path)) & 0x7FFF_FFFF_FFFF_FFFF


def _index_rows(index: Any) -> Iterator[tuple[np.ndarray, list[Any], list[Any], list[Any]]]:
    """(ids, sha256s, shares, paths) of the index's photos table, in batches."""
    cols = ["id", "sha256", "share", "path"]
    with contextlib.suppress(Exception):  # see what is on disk, not a cached version
        index.photos.checkout_latest()
    try:
        batches = index.photos.to_lance().to_batches(columns=cols, batch_size=65536)
    except Exception:  # an older table layout: read it whole
        batches = index.photos.search().select(cols).limit(None).to_arrow().to_batches()
    for b in batches:
        yield (
            b.column("id").to_numpy(zero_copy_only=False).astype(np.int64),
            b.column("sha256").to_pylist(),
            b.column("share").to_pylist(),
            b.column("path").to_pylist(),
        )


def index_differences(catalog: Catalog, index: Any) -> IndexDiff:
    """Compare the catalog's done files with the index's rows (rows still in the
    index's write buffer count as written: call `index.flush()` first to check
    the disk alone)."""
    ids_parts: list[np.ndarray] = []
    dig_parts: list[np.ndarray] = []
    for ids, shas, shares, paths in _index_rows(index):
        ids_parts.append(ids)
        dig_parts.append(
            np.fromiter(
                (_digest(s, sh, p) for s, sh, p in zip(shas, shares, paths, strict=True)),
                dtype=np.int64,
                count=len(ids),
            )
        )
    idx_ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int64)
    idx_dig = np.concatenate(dig_parts) if dig_parts else np.zeros(0, np.int64)
    order = np.argsort(idx_ids, kind="stable")
    idx_ids, idx_dig = idx_ids[order], idx_dig[order]
    buffered = set(index.buffered_ids())

    diff = IndexDiff()
    seen = np.zeros(idx_ids.size, dtype=np.bool_)
    for batch in catalog.done_keys():
        ids = np.fromiter((k[0] for k in batch), dtype=np.int64, count=len(batch))
        pos = np.searchsorted(idx_ids, ids)
        for (fid, share, rel, sha), p in zip(batch, pos.tolist(), strict=True):
            if p < idx_ids.size and idx_ids[p] == fid:
                seen[p] = True
                if idx_dig[p] != _digest(sha, share, storable(rel)) and fid not in buffered:
                    diff.stale.append(fid)
            elif fid not in buffered and not _left_out(catalog, sha):
                diff.missing.append(fid)
    leftover = idx_ids[~seen]
    if leftover.size:
        known = catalog.existing_ids(leftover.tolist())
        diff.extra = [int(i) for i in leftover.tolist() if int(i) not in known]
    return diff


def _left_out(catalog: Catalog, sha: str | None) -> bool:
    """A done file the index keeps no row for on purpose: the video half of a live
    photo (it is part of its still). Asked only for files without a row."""
    content = catalog.content(sha) if sha else None
    return content is not None and metadata_of(content.results).live_photo_of is not None


def _gone_sidecars(catalog: Catalog) -> Iterator[tuple[FileRow, str]]:
    """(done file, sidecar path) of each sidecar we wrote that is no longer on disk as
    a regular file (deleted, or its write lost with a crash of the disk cache)."""
    for batch in catalog.written_sidecars():
        for row, path in batch:
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    continue
            except OSError:
                pass
            yield row, path


def missing_sidecars(catalog: Catalog) -> list[int]:
    """Ids of done files whose sidecar we wrote is gone from disk."""
    return [row.id for row, _path in _gone_sidecars(catalog)]


def sidecar_differences(catalog: Catalog, limit: int = 1000) -> list[dict[str, str]]:
    """Done photos whose sidecar is not settled (never written, failed, left untouched
    as unsafe), and sidecars we wrote that are no longer on disk as a regular file."""
    out = [
        {
            "share": row.share,
            "path": display(row.relpath),
            "problem": f"sidecar {display(path)} we wrote is missing",
        }
        for row, path in itertools.islice(_gone_sidecars(catalog), limit)
    ]
    for row, record in catalog.sidecar_records(limit):
        where = display(row.relpath)
        if record is None:
            out.append({"share": row.share, "path": where, "problem": "sidecar not written yet"})
        else:  # sidecar_records returns only records that are not settled
            out.append(
                {
                    "share": row.share,
                    "path": where,
                    "problem": f"sidecar {record['state']}: {record.get('warning') or ''}".strip(),
                }
            )
    return out


def check_report(catalog: Catalog, index: Any, *, sidecars: bool) -> dict[str, Any]:
    """What `vaultctl check` prints: each kind of disagreement (the first 200 of
    each, by path), their counts, and whether everything agrees."""
    diff = index_differences(catalog, index)

    def where(ids: list[int]) -> list[dict[str, str]]:
        out = []
        for i in ids[:200]:
            row = catalog.get_by_id(i)
            share, rel = (row.share, display(row.relpath)) if row else ("", "")
            out.append({"id": str(i), "share": share, "path": rel})
        return out

    unsettled = sidecar_differences(catalog) if sidecars else []
    counts = {
        "index_missing": len(diff.missing),
        "index_stale": len(diff.stale),
        "index_extra": len(diff.extra),
        "sidecars": len(unsettled),
    }
    return {
        "index_missing": where(diff.missing),
        "index_stale": where(diff.stale),
        "index_extra": [{"id": str(i)} for i in diff.extra[:200]],
        "sidecars": unsettled,
        "counts": counts,
        "agree": not any(counts.values()),
    }
