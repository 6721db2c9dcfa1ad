"""Apple live photos: a still (`IMG_1.HEIC`) and a short video (`IMG_1.MOV`) that
belong together.

The pair is one item: the still is analyzed, indexed and searched; the video half
is catalogued (so `show` knows it, and export copies it with its folder) but not
analyzed frame by frame nor indexed on its own, or every live photo would come up
twice. A video is the video half when Apple marked it as one (QuickTime
`ContentIdentifier`, which only live-photo videos carry) and its still lies beside
it under the same name. The still is looked for, not assumed: a clip copied
without its still is a video, and so is `Wedding.mov` beside `Wedding.jpg`.

Which half arrives first is up to the copy, and either may be deleted or renamed
later, so each half's record can go stale: after a half is stored, the other half
is sent through the pipeline again when its record disagrees (`LivePairs.stored`),
and so is a video half whose still is deleted or renamed (`forgotten`, `moved`,
as a catalog listener). Such a recheck reuses the stored results and re-runs only
the metadata step (and, for a video that stopped being a half, the analyzers it
skipped).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from photovault.catalog.store import Catalog, FileRow, display
from photovault.media.formats import extension_of
from photovault.media.types import PhotoMetadata

log = logging.getLogger(__name__)

#: Extensions a live photo's still and video use (iPhones write HEIC or JPEG + MOV).
STILL_EXTENSIONS = ("heic", "heif", "jpg", "jpeg")
VIDEO_EXTENSIONS = ("mov",)
#: What an analyzer that did not run on a video half records (not an error: it is
#: done for that content until the video stops being a half).
SKIPPED = "skipped"


def _sibling(path: Path, extensions: tuple[str, ...]) -> str | None:
    """The name of a file beside `path` with its stem and one of these extensions in
    either case, if one exists (checked by name: a folder may hold 10k files)."""
    stem = path.name.rpartition(".")[0]
    if not stem:
        return None
    for ext in extensions:
        for variant in (ext.upper(), ext):
            name = f"{stem}.{variant}"
            if name != path.name and os.path.isfile(path.parent / name):
                return name
    return None


def still_of(path: Path, kind: str, meta: PhotoMetadata | None) -> str | None:
    """For the video half of a live photo, its still's file name; else None."""
    if kind != "video" or meta is None or not meta.extra.get("content_identifier"):
        return None
    return _sibling(path, STILL_EXTENSIONS)


def skipped_result(still: str) -> dict[str, Any]:
    """The result an analyzer records for a video half it did not run on."""
    return {SKIPPED: f"part of the live photo {still}", "tags": [], "faces": []}


def skipped_names(stored: dict[str, Any]) -> list[str]:
    """Analyzers whose stored result says they skipped this content."""
    return [n for n, r in stored.items() if isinstance(r, dict) and SKIPPED in r]


def changed(stored: dict[str, Any], live: dict[str, str]) -> bool:
    """Whether the live-photo fields of stored results differ from `live` (the
    other half arrived or went since the item was analyzed)."""
    meta = stored.get("metadata")
    if not isinstance(meta, dict) or "error" in meta:
        return False
    return any(meta.get(k) != live.get(k) for k in ("live_photo_of", "live_video"))


def _relpath_beside(relpath: str, name: str) -> str:
    folder, slash, _old = relpath.rpartition("/")
    return f"{folder}{slash}{name}"


class LivePairs:
    """Decides the live-photo fields of a file and keeps both halves' records in
    step; a catalog listener too (a still deleted or renamed frees its video)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def _done_meta(self, share: str, relpath: str) -> tuple[FileRow, Any] | None:
        row = self.catalog.get(share, relpath)
        if row is None or row.state != "done" or not row.sha256:
            return None
        content = self.catalog.content(row.sha256)
        return (row, content.metadata) if content is not None else None

    def fields(
        self,
        rows: list[FileRow],
        path: Path,
        kind: str,
        meta: PhotoMetadata | None,
        sha256: str | None = None,
    ) -> dict[str, str]:
        """{"live_photo_of": still} for a video half, {"live_video": video} for a
        still whose video beside it is a marked live-photo video, else {}. `rows` are
        the files of this content in the batch, `path` the first's. Results are kept
        per content, so content also catalogued elsewhere (a copy) is no half."""
        row = rows[0]
        still = still_of(path, kind, meta)
        if still:
            copies = len(rows) > 1 or (
                sha256 is not None and self.has_copies(sha256, {r.id for r in rows})
            )
            return {} if copies else {"live_photo_of": still}
        if kind == "video" or extension_of(path) not in STILL_EXTENSIONS:
            return {}
        video = _sibling(path, VIDEO_EXTENSIONS)
        other = self._done_meta(row.share, _relpath_beside(row.relpath, video)) if video else None
        if video and other is not None and other[1].get("content_identifier"):
            claimed = other[1].get("live_photo_of")
            if not claimed or claimed == path.name:  # IMG.HEIC and IMG.JPG: the first wins
                return {"live_video": video}
        return {}

    def has_copies(self, sha256: str, file_ids: set[int]) -> bool:
        """Whether this content is also catalogued under other files (results are kept
        per content: a byte-identical copy elsewhere is no half, and must keep them)."""
        return any(f.id not in file_ids for f in self.catalog.files_with_content(sha256))

    def stored(self, row: FileRow, live: dict[str, str]) -> None:
        """After a half was stored: send the other half through again when its
        record does not name this one (it was stored before this one arrived)."""
        name = row.relpath.rpartition("/")[2]
        for key, back in (("live_photo_of", "live_video"), ("live_video", "live_photo_of")):
            if not live.get(key):
                continue
            other = self._done_meta(row.share, _relpath_beside(row.relpath, live[key]))
            if other is not None and other[1].get(back) != name:
                self._recheck(other[0], f"the other half of {display(row.relpath)}")

    def _recheck(self, row: FileRow, why: str) -> None:
        if self.catalog.recheck([row.id]):
            log.info("%s/%s is %s; checking it again", row.share, display(row.relpath), why)

    # -- catalog listener ------------------------------------------------------------

    def forgotten(self, share: str, relpath: str) -> None:
        self._left(share, relpath)

    def moved(self, share: str, src: str, dest: str) -> None:
        self._left(share, src)
        self._arrived(share, dest)

    def _left(self, share: str, relpath: str) -> None:
        """A half left this name (deleted, or renamed away): the other half beside
        the old name, if done and still naming it, is checked again."""
        name = relpath.rpartition("/")[2]
        ext = extension_of(relpath)
        others: tuple[str, ...]
        if ext in STILL_EXTENSIONS:
            others, back = VIDEO_EXTENSIONS, "live_photo_of"
        elif ext in VIDEO_EXTENSIONS:
            others, back = STILL_EXTENSIONS, "live_video"
        else:
            return
        for other in self._beside(share, relpath, others):
            if other[1].get(back) == name:
                self._recheck(other[0], f"no longer beside {display(relpath)}")

    def _arrived(self, share: str, relpath: str) -> None:
        """A file was renamed to this name: it is checked again when it was a half or
        now lies beside a possible other half, and so is that other half."""
        moved = self._done_meta(share, relpath)
        ext = extension_of(relpath)
        if ext not in STILL_EXTENSIONS and ext not in VIDEO_EXTENSIONS:
            return
        others = VIDEO_EXTENSIONS if ext in STILL_EXTENSIONS else STILL_EXTENSIONS
        beside = self._beside(share, relpath, others)
        if moved is not None and (
            moved[1].get("live_photo_of") or moved[1].get("live_video") or beside
        ):
            self._recheck(moved[0], "renamed")
        for other in beside:
            if other[1].get("content_identifier") or other[1].get("live_video"):
                self._recheck(other[0], f"now beside {display(relpath)}")

    def _beside(
        self, share: str, relpath: str, extensions: tuple[str, ...]
    ) -> list[tuple[FileRow, Any]]:
        """Done files with `relpath`'s stem and one of these extensions (either case)."""
        stem = relpath.rpartition(".")[0]
        out = []
        for ext in extensions:
            for variant in dict.fromkeys((ext.upper(), ext)):
                other = self._done_meta(share, f"{stem}.{variant}")
                if other is not None:
                    out.append(other)
        return out
