"""The consistency check knows a live photo's video half has no index row on purpose."""

from __future__ import annotations

from pathlib import Path

from photovault.catalog.store import Catalog
from photovault.ops.consistency import index_differences

from .conftest import photo


def test_a_live_photo_video_half_without_a_row_is_not_missing(tmp_path: Path, make_index) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    try:
        for i, (name, meta) in enumerate(
            [
                ("IMG_0001.HEIC", {"kind": "photo", "live_video": "IMG_0001.MOV"}),
                ("IMG_0001.MOV", {"kind": "video", "live_photo_of": "IMG_0001.HEIC"}),
                ("clip.mp4", {"kind": "video"}),
            ],
            start=1,
        ):
            catalog.observe("main", f"misc/{name}", 100 + i, 1_700_000_000_000_000_000 + i)
            (row,) = catalog.claim(1)
            sha = f"{i:064x}"
            catalog.store_content(
                sha, "metadata:2", meta, {"metadata": meta}, [(row.id, 100 + i, row.mtime_ns)]
            )
        index = make_index()
        first = catalog.get("main", "misc/IMG_0001.HEIC")
        assert first is not None
        index.upsert([photo(first.id, path="misc/IMG_0001.HEIC", sha256=f"{1:064x}")])
        index.flush()
        diff = index_differences(catalog, index)
        clip = catalog.get("main", "misc/clip.mp4")
        assert clip is not None
        assert diff.missing == [clip.id]  # the clip was never written; the MOV is left out
    finally:
        catalog.close()
