"""The sampling policy on its own: gaps, black frames, duplicates and caps, no ffmpeg."""

from __future__ import annotations

import numpy as np
import pytest

from photovault.media.types import VideoFrame
from photovault.media.videosample import (
    Prefilter,
    VideoSampling,
    cap,
    gap_points,
    is_black,
    select_frames,
)


def picture(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    w, h = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def frames_at(*times: float) -> list[VideoFrame]:
    return [VideoFrame(t, picture(i)) for i, t in enumerate(times)]


def test_gap_points_fill_only_the_gaps_longer_than_the_limit() -> None:
    assert gap_points([0.0, 2.0, 10.0], 12.0, 4.0) == [[6.0]]
    assert gap_points([0.0, 2.0, 11.0], 12.0, 4.0) == [[5.0, 8.0]]


def test_gap_points_cover_the_start_before_the_first_keyframe_and_the_end() -> None:
    assert gap_points([5.0], 10.0, 4.0) == [[2.5], [7.5]]


def test_gap_points_of_a_video_without_keyframes_span_the_whole_video() -> None:
    assert gap_points([], 9.0, 4.0) == [[3.0, 6.0]]


def test_the_gap_widens_so_a_long_video_fits_the_frame_budget() -> None:
    settings = VideoSampling(max_gap_s=4.0, per_minute=20, max_frames=120)
    assert settings.gap(60.0) == 4.0
    assert settings.gap(3600.0) == 30.0
    assert VideoSampling(max_gap_s=1.0, per_minute=20).gap(10.0) == 3.0


def test_a_dark_flat_frame_is_black_but_a_dark_detailed_one_is_not() -> None:
    settings = VideoSampling()
    assert is_black(np.full((48, 64, 3), 6, np.uint8), settings)
    night = np.zeros((48, 64, 3), np.uint8)
    night[::8] = 200  # street lights on a dark street
    assert not is_black(night, settings)


def test_a_deep_blue_frame_is_not_black() -> None:
    assert not is_black(np.full((48, 64, 3), (0, 0, 128), np.uint8), VideoSampling())


def test_select_frames_drops_black_frames_and_near_duplicates() -> None:
    base = picture(7)
    shifted = np.clip(base.astype(np.int16) + 2, 0, 255).astype(np.uint8)
    frames = [
        VideoFrame(0.0, np.zeros_like(base)),
        VideoFrame(1.0, base),
        VideoFrame(2.0, shifted),
        VideoFrame(3.0, 255 - base),
    ]
    kept = select_frames(frames, VideoSampling())
    assert [f.at for f in kept] == [1.0, 3.0]


def test_select_frames_keeps_the_brightest_when_all_are_black() -> None:
    frames = [VideoFrame(t, np.full((48, 64, 3), v, np.uint8)) for t, v in [(0, 1), (1, 9), (2, 4)]]
    assert [f.at for f in select_frames(frames, VideoSampling())] == [1]


def test_select_frames_of_nothing_is_nothing() -> None:
    assert select_frames([], VideoSampling()) == []


def test_cap_drops_the_frames_closest_in_time_first() -> None:
    kept = cap(frames_at(0.0, 1.0, 1.2, 5.0, 9.0), per_minute=100, total=4)
    assert [f.at for f in kept] == [0.0, 1.0, 5.0, 9.0]


def test_cap_applies_per_minute_of_video() -> None:
    times = [i * 2.0 for i in range(30)] + [60.0 + i * 10.0 for i in range(6)]
    kept = cap(frames_at(*times), per_minute=10, total=1000)
    first = [f.at for f in kept if f.at < 60]
    second = [f.at for f in kept if f.at >= 60]
    assert len(first) == 10
    assert len(second) == 6
    assert max(np.diff(first)) <= 8.0  # spread over the minute, not bunched


@pytest.mark.parametrize("total", [1, 3])
def test_cap_keeps_the_total(total: int) -> None:
    assert len(cap(frames_at(0, 1, 2, 3, 4, 5), per_minute=60, total=total)) == total


def test_cap_thins_evenly_spaced_frames_over_the_whole_video_not_only_its_start() -> None:
    times = [i * 0.5 for i in range(100)]  # a cut every half second for 50 s
    kept = [f.at for f in cap(frames_at(*times), per_minute=100, total=10)]
    assert len(kept) == 10
    assert kept[0] == 0.0 and kept[-1] == 49.5
    assert max(np.diff(kept)) <= 2 * 49.5 / 9  # spread out: at most twice the even gap


def test_the_prefilter_applies_the_caps_while_frames_stream_in() -> None:
    # 1500 cuts in 750 s, each frame a new picture: only the caps can drop them.
    settings = VideoSampling(per_minute=20, max_frames=60)
    times = [i * 0.5 for i in range(1500)]
    keep = Prefilter(settings, lambda i: times[i] if i < len(times) else None)
    for i in range(len(times)):
        keep.offer(i, picture(i, (16, 12)))
    assert keep.peak <= settings.max_frames + 1
    kept = [times[i] for i, _ in keep.result()]
    assert len(kept) == settings.max_frames
    even = times[-1] / (settings.max_frames - 1)
    assert kept[0] == 0.0 and kept[-1] >= times[-1] - 2 * even  # the whole video, not its start
    assert max(np.diff(kept)) <= 2 * even


def test_the_prefilter_holds_frames_whose_time_is_not_known_yet() -> None:
    settings = VideoSampling(per_minute=20, max_frames=2)
    known: list[float] = []
    keep = Prefilter(settings, lambda i: known[i] if i < len(known) else None)
    for i in range(4):
        keep.offer(i, picture(i, (16, 12)))
    assert len(keep.kept) == 4  # nothing to weigh them by yet
    known += [0.0, 1.0, 1.5, 9.0, 10.0]
    keep.offer(4, picture(4, (16, 12)))
    assert [i for i, _ in keep.result()] == [0, 3]  # 1.0, 1.5 and 10.0 came close after another
