from __future__ import annotations

from pathlib import Path

import pytest

from photovault.media.formats import (
    SUPPORTED_EXTENSIONS,
    extension_of,
    is_raw,
    is_supported,
    is_video,
)


@pytest.mark.parametrize(
    "name",
    [
        "a.jpg",
        "b.JPEG",
        "c.Jpe",
        "d.png",
        "e.webp",
        "f.TIF",
        "g.tiff",
        "h.gif",
        "i.HEIC",
        "j.heif",
        "k.avif",
    ],
)
def test_is_supported_accepts_raster_formats_in_any_case(name: str) -> None:
    assert is_supported(name)


@pytest.mark.parametrize(
    "ext", ["dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "pef", "srw"]
)
def test_is_supported_accepts_raw_formats_and_marks_them_raw(ext: str) -> None:
    assert is_supported(Path(f"/photos/IMG_0001.{ext.upper()}"))
    assert is_raw(f"IMG_0001.{ext}")


@pytest.mark.parametrize(
    "name", ["notes.txt", "IMG_1.jpg.xmp", "song.mp3", "README", ".jpg", "/photos/dir.jpg/file"]
)
def test_is_supported_rejects_other_names(name: str) -> None:
    assert not is_supported(name)


@pytest.mark.parametrize("name", ["movie.mp4", "IMG_0001.MOV", "clip.mkv", "old.avi", "phone.3gp"])
def test_is_supported_accepts_video_containers_and_marks_them_video(name: str) -> None:
    assert is_supported(name)
    assert is_video(name)
    assert not is_raw(name)


def test_extension_of_ignores_dots_in_folder_names() -> None:
    assert extension_of("/photos/2024.07/IMG") == ""


def test_supported_extensions_are_lower_case_without_dots() -> None:
    assert all(ext == ext.lower() and "." not in ext for ext in SUPPORTED_EXTENSIONS)
