"""The decode pool on videos: streamed hashing, ffmpeg sampling, errors kept per file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from skimage import data as skdata

from helpers.photos import write_jpeg
from helpers.videos import make_clip, make_motion_photo, truncate
from photovault.pipeline import decodepool
from photovault.pipeline.decodepool import DecodePool, decode_file

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

SCENES = [(skdata.chelsea(), 1.0), (skdata.coffee(), 1.0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("pool") / "clip.mp4", SCENES)


def test_a_video_is_hashed_and_decoded_into_frames(clip: Path) -> None:
    out = decode_file(str(clip), 128, 100_000_000)
    assert out.error is None
    assert out.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert out.size == clip.stat().st_size
    assert out.image is not None and out.image.kind == "video"
    assert out.image.frames is not None and len(out.image.frames) == 2
    assert out.seconds > 0


def test_a_video_is_never_read_whole_so_the_photo_size_cap_does_not_apply(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below the clip's size: a photo this big would be refused as "file too large".
    monkeypatch.setattr(decodepool, "MAX_FILE_BYTES", 1024)
    monkeypatch.setattr(decodepool, "HASH_CHUNK_BYTES", 4096)
    out = decode_file(str(clip), 64, 100_000_000)
    assert out.error is None
    assert out.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_a_video_larger_than_the_video_cap_is_refused_for_good(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decodepool, "MAX_VIDEO_BYTES", 1024)
    out = decode_file(str(clip), 64, 100_000_000)
    assert out.error == f"file too large ({clip.stat().st_size} bytes)"
    assert out.permanent


def test_hashing_only_skips_the_decode(clip: Path) -> None:
    out = decode_file(str(clip), 0, 100_000_000)
    assert out.sha256 is not None and out.image is None and out.error is None


def test_a_truncated_video_fails_permanently_with_its_reason(tmp_path: Path) -> None:
    path = truncate(make_clip(tmp_path / "cut.mp4", SCENES), 0.5)
    out = decode_file(str(path), 64, 100_000_000)
    assert out.error == "not a playable video: moov atom not found"
    assert out.permanent
    assert out.sha256 is not None  # the bytes are known: the catalog can record them


def test_missing_ffmpeg_is_retried_later_not_failed_for_good(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    out = decode_file(str(clip), 64, 100_000_000)
    assert out.error == "ffmpeg is not installed: apt install ffmpeg"
    assert not out.permanent


def test_an_ffmpeg_killed_by_a_signal_is_retried_later_not_failed_for_good(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the OOM killer leaves it; ffprobe is the real one.
    (tmp_path / "ffprobe").symlink_to(shutil.which("ffprobe") or "ffprobe")
    killed = tmp_path / "ffmpeg"
    killed.write_text("#!/bin/sh\nkill -KILL $$\n")
    killed.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    out = decode_file(str(clip), 64, 100_000_000)
    assert out.error == "ffmpeg was killed (SIGKILL; out of memory?)"
    assert not out.permanent


def test_a_vanished_video_is_a_transient_error(tmp_path: Path) -> None:
    out = decode_file(str(tmp_path / "gone.mp4"), 64, 100_000_000)
    assert out.error == "file vanished before it was read"
    assert not out.permanent


def test_the_photo_path_still_reads_photos_and_motion_photos(tmp_path: Path, clip: Path) -> None:
    photo = decode_file(str(write_jpeg(tmp_path / "a.jpg", seed=5)), 64, 100_000_000)
    assert photo.image is not None and photo.image.kind == "photo"
    motion = make_motion_photo(tmp_path / "b.MP.jpg", skdata.chelsea(), clip)
    out = decode_file(str(motion), 64, 100_000_000)
    assert out.image is not None and out.image.kind == "motion_photo"


def test_the_pool_returns_a_videos_frames_across_processes(clip: Path) -> None:
    pool = DecodePool(1)
    try:
        out = pool.submit(clip, 96, 100_000_000).result(timeout=120)
    finally:
        pool.shutdown()
    assert out.image is not None and out.image.frames is not None
    assert [round(f.at) for f in out.image.frames] == [0, 1]
    assert out.image.frames[0].pixels.shape == (54, 96, 3)
