from __future__ import annotations

import pytest

from photovault.watch.filters import wanted


@pytest.mark.parametrize(
    "rel",
    [
        "IMG_1.jpg",
        "a/b/IMG_2.JPG",
        "x.heic",
        "y.png",
        "z.webp",
        "raw/DSC_1.NEF",
        "scan.tiff",
        "movie.mov",
        "DCIM/VID_20240601.mp4",
        "clip.MKV",
    ],
)
def test_photos_are_wanted(rel: str) -> None:
    assert wanted(rel)


@pytest.mark.parametrize(
    "rel",
    [
        "~$IMG.jpg",
        "IMG.jpg.tmp",
        "IMG.jpg.part",
        ".~lock.IMG.jpg#",
        "._IMG.jpg",
        ".DS_Store",
        "Thumbs.db",
        "@eaDir/IMG.jpg/SYNOPHOTO_THUMB_M.jpg",
        "#recycle/IMG.jpg",
        ".Trash-1000/files/IMG.jpg",
        ".stversions/IMG~20240101.jpg",
        "IMG.jpg.xmp",
        "IMG.xmp",
        ".IMG.jpg.xmp.tmp123",
        "notes.txt",
        "song.mp3",
        "movie.mov.part",
        "@eaDir/clip.mp4/SYNOPHOTO_FILM_M.mp4",
    ],
)
def test_temp_system_and_sidecar_names_are_ignored(rel: str) -> None:
    assert not wanted(rel)
