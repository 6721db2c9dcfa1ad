"""Apple live photos: the video half is found by Apple's mark and its still beside it."""

from __future__ import annotations

from pathlib import Path

from photovault.media.types import PhotoMetadata
from photovault.pipeline import livephoto

MARKED = PhotoMetadata(extra={"content_identifier": "6F1C1D24-0D7E-4B5D-9C36-2B0E5D9E6A11"})


def test_a_marked_video_beside_its_still_is_the_stills_video_half(tmp_path: Path) -> None:
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"still")
    (tmp_path / "IMG_0001.MOV").write_bytes(b"video")
    assert livephoto.still_of(tmp_path / "IMG_0001.MOV", "video", MARKED) == "IMG_0001.HEIC"


def test_a_video_without_apples_mark_or_without_its_still_is_a_video(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"still")
    (tmp_path / "holiday.mov").write_bytes(b"video")
    (tmp_path / "IMG_0002.MOV").write_bytes(b"video")
    assert livephoto.still_of(tmp_path / "holiday.mov", "video", PhotoMetadata()) is None
    assert livephoto.still_of(tmp_path / "IMG_0002.MOV", "video", MARKED) is None


def test_stored_results_that_lack_the_other_half_are_stale() -> None:
    stored = {"metadata": {"kind": "video"}}
    assert livephoto.changed(stored, {"live_photo_of": "IMG_1.HEIC"})
    assert not livephoto.changed(stored, {})
    assert not livephoto.changed({"metadata": {"error": "x"}}, {"live_video": "a.MOV"})


def test_what_a_video_half_skipped_is_known_and_counts_as_nothing() -> None:
    stored = {
        "metadata": {},
        "clip": livephoto.skipped_result("IMG_1.HEIC"),
        "faces": {"faces": []},
    }
    assert livephoto.skipped_names(stored) == ["clip"]
