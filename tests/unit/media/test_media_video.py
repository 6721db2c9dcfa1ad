"""Video probing, frame sampling and single frames, on real clips made with ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from helpers.videos import fit, make_audio_only, make_clip, solid, truncate
from photovault.media.types import MediaError
from photovault.media.video import (
    SOURCE,
    VIDEO_MAX_SIDE,
    ToolMissing,
    VideoSampling,
    VideoTransient,
    _keyframes,
    decode_video,
    frame_at,
    probe,
)
from photovault.media.videosample import Prefilter

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

CAT, COFFEE, ASTRONAUT, ROCKET = (
    skdata.chelsea(),
    skdata.coffee(),
    skdata.astronaut(),
    skdata.rocket(),
)


def scene_of(pixels: np.ndarray, scenes: dict[str, np.ndarray]) -> str:
    """Which scene image a decoded frame shows: the closest by mean absolute difference."""
    h, w = pixels.shape[:2]
    diffs = {
        name: float(np.abs(fit(img, (w, h)).astype(np.int16) - pixels.astype(np.int16)).mean())
        for name, img in scenes.items()
    }
    return min(diffs, key=lambda name: diffs[name])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def three_scenes(clips: Path) -> Path:
    """Cat 0-3 s, coffee 3-6 s, astronaut 6-9 s; keyframes where x264 finds the cuts."""
    scenes = [(CAT, 3.0), (COFFEE, 3.0), (ASTRONAUT, 3.0)]
    return make_clip(clips / "three.mp4", scenes, cut_keyframes=False)


SCENES = {"cat": CAT, "coffee": COFFEE, "astronaut": ASTRONAUT}


def test_probe_reads_duration_size_codec_and_frame_rate(three_scenes: Path) -> None:
    info = probe(three_scenes)
    assert info.duration == pytest.approx(9.0, abs=0.05)
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.codec == "h264"
    assert info.fps == pytest.approx(25.0)
    assert info.frame_count == 225


def test_sampling_finds_a_frame_inside_each_scene_at_a_time_inside_that_scene(
    three_scenes: Path,
) -> None:
    decoded = decode_video(three_scenes, 256)
    assert decoded.frames is not None
    seen: dict[str, list[float]] = {}
    for frame in decoded.frames:
        seen.setdefault(scene_of(frame.pixels, SCENES), []).append(frame.at)
    assert set(seen) == {"cat", "coffee", "astronaut"}
    assert all(0 <= t < 3 for t in seen["cat"])
    assert all(3 <= t < 6 for t in seen["coffee"])
    assert all(6 <= t < 9 for t in seen["astronaut"])


def test_decoded_video_is_upright_rgb_scaled_to_the_working_size(three_scenes: Path) -> None:
    decoded = decode_video(three_scenes, 256)
    assert decoded.kind == "video"
    assert decoded.source == SOURCE
    assert decoded.duration == pytest.approx(9.0, abs=0.05)
    assert decoded.stored_size == (640, 360)
    assert decoded.orientation == 1
    assert decoded.frames
    assert decoded.pixels is decoded.frames[0].pixels
    assert [f.at for f in decoded.frames] == sorted(f.at for f in decoded.frames)
    for frame in decoded.frames:
        assert frame.pixels.dtype == np.uint8
        assert frame.pixels.shape == (144, 256, 3)
        assert frame.pixels.flags.writeable


def test_small_videos_are_never_upscaled(clips: Path) -> None:
    path = make_clip(clips / "tiny.mp4", [(CAT, 1.0)], size=(160, 90))
    decoded = decode_video(path, 512)
    assert decoded.pixels.shape == (90, 160, 3)


def test_a_black_intro_is_skipped(clips: Path) -> None:
    path = make_clip(clips / "intro.mp4", [(solid(), 2.0), (CAT, 2.0)])
    decoded = decode_video(path, 256)
    assert decoded.frames is not None
    assert decoded.frames[0].at >= 2.0
    assert scene_of(decoded.pixels, {"black": solid(), "cat": CAT}) == "cat"


def test_an_all_black_video_keeps_one_frame(clips: Path) -> None:
    path = make_clip(clips / "black.mp4", [(solid(), 2.0), (solid((8, 8, 8)), 2.0)])
    decoded = decode_video(path, 128)
    assert decoded.frames is not None and len(decoded.frames) == 1


def test_near_duplicate_keyframes_of_a_still_scene_are_dropped(clips: Path) -> None:
    # A keyframe every second for ten seconds of one scene: ten keyframes, one picture.
    path = make_clip(clips / "still.mp4", [(CAT, 10.0)], keyint=25)
    decoded = decode_video(path, 256)
    assert decoded.frames is not None and len(decoded.frames) == 1


def test_a_cut_between_regular_keyframes_is_sampled_at_the_cut(clips: Path) -> None:
    # A keyframe every 0.48 s, as MPEG-2 and some cameras write, and one at each cut
    # just 0.08 s after a regular one: the cut's frame is the one kept.
    scenes = [(CAT, 2.0), (COFFEE, 2.0), (ASTRONAUT, 2.0)]
    path = make_clip(clips / "gop12.mp4", scenes, keyint=12)
    decoded = decode_video(path, 128)
    assert decoded.frames is not None
    shown = [(scene_of(f.pixels, SCENES), f.at) for f in decoded.frames]
    assert shown == [("cat", 0.0), ("coffee", 2.0), ("astronaut", 4.0)]


def test_frames_are_added_where_keyframes_are_further_apart_than_the_gap(clips: Path) -> None:
    # One keyframe at 0 s only; the coffee scene starts at 2 s without a keyframe.
    scenes = [(CAT, 2.0), (COFFEE, 8.0)]
    path = make_clip(clips / "sparse.mp4", scenes, cut_keyframes=False, scene_cuts=False)
    decoded = decode_video(path, 256, settings=VideoSampling(max_gap_s=4.0))
    assert decoded.frames is not None
    shown = [(scene_of(f.pixels, {"cat": CAT, "coffee": COFFEE}), f.at) for f in decoded.frames]
    assert shown[0] == ("cat", 0.0)
    coffee_times = [t for name, t in shown if name == "coffee"]
    assert coffee_times and all(2.0 <= t < 10.0 for t in coffee_times)


def test_the_per_minute_cap_limits_the_frames(clips: Path) -> None:
    scenes = [(img, 1.0) for img in (CAT, COFFEE, ASTRONAUT, ROCKET, CAT[::-1], COFFEE[:, ::-1])]
    path = make_clip(clips / "busy.mp4", scenes)
    decoded = decode_video(path, 128, settings=VideoSampling(per_minute=3))
    assert decoded.frames is not None and len(decoded.frames) == 3


def test_a_rotated_phone_clip_comes_out_portrait_and_upright(clips: Path) -> None:
    path = make_clip(clips / "portrait.mp4", [(ASTRONAUT, 1.0)], rotate=90)
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (90, 360, 640)
    assert (info.stored_width, info.stored_height) == (640, 360)
    decoded = decode_video(path, 256)
    assert decoded.stored_size == (360, 640)
    assert decoded.pixels.shape == (256, 144, 3)
    upright = {"upright": ASTRONAUT, "turned": np.rot90(ASTRONAUT), "back": np.rot90(ASTRONAUT, -1)}
    assert scene_of(decoded.pixels, upright) == "upright"


@pytest.mark.parametrize("rotate", [180, 270])
def test_other_rotations_come_out_upright_too(clips: Path, rotate: int) -> None:
    path = make_clip(clips / f"r{rotate}.mp4", [(ASTRONAUT, 1.0)], rotate=rotate)
    decoded = decode_video(path, 256)
    h, w = decoded.pixels.shape[:2]
    assert (w > h) == (rotate == 180)
    upright = {"upright": ASTRONAUT, "flipped": ASTRONAUT[::-1, ::-1]}
    assert scene_of(decoded.pixels, upright) == "upright"


@pytest.mark.parametrize("ext", ["mkv", "avi", "3gp", "mov", "webm", "m4v"])
def test_other_containers_decode_with_both_scenes(clips: Path, ext: str) -> None:
    path = make_clip(clips / f"two.{ext}", [(CAT, 1.5), (COFFEE, 1.5)])
    decoded = decode_video(path, 192)
    assert decoded.duration == pytest.approx(3.0, abs=0.1)
    assert decoded.frames is not None
    shown = [(scene_of(f.pixels, {"cat": CAT, "coffee": COFFEE}), f.at) for f in decoded.frames]
    assert [name for name, _ in shown] == ["cat", "coffee"]
    assert shown[1][1] == pytest.approx(1.5, abs=0.1)


def test_frame_at_returns_the_upright_frame_at_that_time(three_scenes: Path) -> None:
    pixels = frame_at(three_scenes, 4.5, 320)
    assert pixels.shape == (180, 320, 3)
    assert scene_of(pixels, SCENES) == "coffee"
    assert scene_of(frame_at(three_scenes, 7.0, 160), SCENES) == "astronaut"


def test_frame_at_the_very_end_returns_the_last_frame(three_scenes: Path) -> None:
    assert scene_of(frame_at(three_scenes, 9.0, 96), SCENES) == "astronaut"


def test_frame_at_past_the_end_says_how_long_the_video_is(three_scenes: Path) -> None:
    with pytest.raises(MediaError, match=r"no frame at 60 s: the video lasts 9 s"):
        frame_at(three_scenes, 60.0, 128)


def test_a_truncated_mp4_without_its_moov_atom_is_refused_with_ffmpegs_reason(
    clips: Path,
) -> None:
    path = truncate(make_clip(clips / "cut.mp4", [(CAT, 2.0)]), 0.5)
    with pytest.raises(MediaError) as err:
        decode_video(path, 128)
    assert err.value.reason == "not a playable video: moov atom not found"


def test_a_truncated_mp4_with_its_header_first_is_refused_as_truncated(clips: Path) -> None:
    src = make_clip(clips / "long.mp4", [(CAT, 3.0), (COFFEE, 3.0)])
    fast = clips / "faststart.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-c", "copy",
         "-movflags", "+faststart", str(fast)],
        check=True,
    )  # fmt: skip
    truncate(fast, 0.6)
    with pytest.raises(MediaError, match="truncated video"):
        decode_video(fast, 128)


def test_a_text_file_named_mp4_is_not_a_video(clips: Path) -> None:
    path = clips / "notes.mp4"
    path.write_text("shopping list: milk, eggs\n" * 20)
    with pytest.raises(MediaError) as err:
        decode_video(path, 128)
    assert err.value.reason == "not a video (looks like text)"


def test_an_empty_file_is_refused(clips: Path) -> None:
    path = clips / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty file \(0 bytes\)"):
        probe(path)


def test_random_bytes_named_mov_are_refused_with_ffmpegs_reason(clips: Path) -> None:
    path = clips / "noise.mov"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match=r"^.*: not a playable video: "):
        decode_video(path, 128)


def test_an_audio_only_file_has_no_video_stream(clips: Path) -> None:
    path = make_audio_only(clips / "voice.mp4")
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.reason == "no video stream"


def test_missing_ffmpeg_is_an_installation_problem_not_a_bad_file(three_scenes: Path) -> None:
    settings = VideoSampling(ffprobe="/nonexistent/ffprobe", ffmpeg="/nonexistent/ffmpeg")
    with pytest.raises(ToolMissing) as err:
        decode_video(three_scenes, 128, settings=settings)
    assert err.value.reason == "ffmpeg is not installed: apt install ffmpeg"


def test_a_video_with_an_audio_track_decodes_its_pictures(clips: Path) -> None:
    path = make_clip(clips / "talk.mp4", [(CAT, 1.0), (COFFEE, 1.0)], audio=True)
    decoded = decode_video(path, 128)
    assert decoded.frames is not None and len(decoded.frames) == 2


def test_a_hung_ffmpeg_is_killed_after_its_timeout(three_scenes: Path, tmp_path: Path) -> None:
    # A stand-in that never answers, as ffmpeg does on a stalled network share.
    hung = tmp_path / "ffmpeg"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o755)
    settings = VideoSampling(ffmpeg=str(hung), timeout_s=0.5, timeout_per_minute_s=0.0)
    with pytest.raises(VideoTransient) as err:  # the share may answer later: retried
        decode_video(three_scenes, 64, settings=settings)
    assert err.value.reason == "ffmpeg did not finish within 0.5 s (unreadable or stalled file?)"


def test_an_ffmpeg_killed_by_a_signal_is_a_transient_error(
    three_scenes: Path, tmp_path: Path
) -> None:
    # As the OOM killer leaves it: the file may well be fine, so it is tried again.
    killed = tmp_path / "ffmpeg"
    killed.write_text(
        f'#!/bin/sh\n{shutil.which("ffmpeg")} "$@" >/dev/null 2>&1 &\nkill -KILL $$\n'
    )
    killed.chmod(0o755)
    with pytest.raises(VideoTransient) as err:
        decode_video(three_scenes, 64, settings=VideoSampling(ffmpeg=str(killed)))
    assert err.value.reason == "ffmpeg was killed (SIGKILL; out of memory?)"


def test_a_stream_ffmpeg_cannot_decode_is_refused_with_ffmpegs_error_line(clips: Path) -> None:
    # The H.264 fourcc replaced: ffprobe still sees a 640x360 stream, no decoder reads it.
    data = make_clip(clips / "h264.mp4", [(CAT, 1.0)]).read_bytes()
    path = clips / "unknown-codec.mp4"
    path.write_bytes(data.replace(b"avc1", b"zzzz").replace(b"avcC", b"zzzC"))
    with pytest.raises(MediaError) as err:
        decode_video(path, 128)
    assert err.value.reason == (
        "not a playable video: Decoder (codec none) not found for input stream #0:0"
    )


def test_video_frames_are_at_most_video_max_side_whatever_the_analyzers_ask(
    clips: Path,
) -> None:
    path = make_clip(clips / "hd.mp4", [(CAT, 0.5)], size=(1280, 720))
    decoded = decode_video(path, 4096)
    assert VIDEO_MAX_SIDE == 768
    assert decoded.pixels.shape == (432, 768, 3)
    assert decoded.stored_size == (1280, 720)


def test_a_long_video_of_many_short_scenes_holds_few_frames_while_decoding(
    clips: Path,
) -> None:
    # 240 cuts in two minutes, a keyframe at each, every scene a new colour: the
    # keyframe pass lets dozens through, and without caps applied as frames arrive
    # all of them would be held at once.
    rng = np.random.default_rng(5)
    colors = [tuple(int(c) for c in rng.integers(40, 256, 3)) for _ in range(240)]
    scenes = [
        (solid(c if i % 2 else (c[0] // 3, c[1] // 3, c[2] // 3)), 0.5)
        for i, c in enumerate(colors)
    ]
    path = make_clip(clips / "edited.mp4", scenes, size=(96, 64), fps=10, keyint=5)
    settings = VideoSampling(max_frames=12, per_minute=20)
    info = probe(path)
    keep = Prefilter(settings)
    _, times = _keyframes(path, (96, 64), info, settings, keep)
    assert len(times) >= 60  # all of these were decoded and looked at
    assert keep.peak <= settings.max_frames + 1
    decoded = decode_video(path, 96, settings=settings)
    assert decoded.frames is not None and len(decoded.frames) <= settings.max_frames
    kept = [f.at for f in decoded.frames]
    assert kept[0] < 5.0 and kept[-1] > 100.0  # spread over the video, not its first minute
