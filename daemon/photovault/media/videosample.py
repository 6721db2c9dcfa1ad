"""Which frames of a video the analyzers see: the sampling plan, without ffmpeg.

A video is analysed through a few frames, never all of them. The plan, cheapest
first: the keyframes (encoders such as x264 put one at every scene cut, so cuts
come for free); then, where keyframes are further apart than `max_gap_s`, frames
at even points inside the gap; then black frames and near-duplicates of the
previous kept frame go; last, per-minute and total caps drop the frames closest
in time to a neighbour. The caps apply while frames stream in too (`Prefilter`),
so a long edited video with a thousand cuts never holds more than about
`max_frames` frames. Pure functions on times and pixels, so the policy is
tested without decoding anything; media/video.py runs ffmpeg around them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from photovault.media.types import VideoFrame


@dataclass(frozen=True)
class VideoSampling:
    """How densely a video is sampled and what ffmpeg may spend on it.

    The defaults keep a 2-core NAS responsive: a minute of phone video costs a
    keyframe pass plus at most a few seeks, and yields at most 20 frames; a long
    video at most 60, about 60 MB of frames at media/video.py's VIDEO_MAX_SIDE.
    """

    #: At least one frame every this many seconds, where the content changes.
    max_gap_s: float = 4.0
    #: At most this many frames in any minute of video ...
    per_minute: int = 20
    #: ... and in the whole video (a long video gets proportionally sparser frames).
    max_frames: int = 60
    #: A frame is black when its mean brightness (each pixel's brightest channel,
    #: 0-255) is below this and it is flat.
    black_luma: float = 20.0
    #: "Flat": the brightness's standard deviation is below this.
    black_spread: float = 10.0
    #: A frame whose 8x8 grey thumbnail differs from the previous kept one by less
    #: than this mean absolute difference (0-255) is a near-duplicate.
    duplicate_diff: float = 8.0
    #: Decoder threads per ffmpeg process (ffmpeg's default is one per core).
    threads: int = 2
    #: Seconds an ffmpeg or ffprobe call may take, plus `timeout_per_minute_s` per
    #: minute of video; past that the file counts as unreadable (a stalled share).
    timeout_s: float = 60.0
    timeout_per_minute_s: float = 15.0
    #: The programs, by name on PATH or as a path (tests point them elsewhere).
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

    def gap(self, duration: float | None) -> float:
        """The largest gap allowed between frames: `max_gap_s`, widened so that a
        long video fits `max_frames` and the per-minute cap."""
        spacing = max(self.max_gap_s, 60.0 / max(1, self.per_minute))
        if duration:
            spacing = max(spacing, duration / max(1, self.max_frames))
        return spacing

    def timeout(self, duration: float | None) -> float:
        """Seconds allowed for one ffmpeg call on a video of `duration` seconds."""
        return self.timeout_s + self.timeout_per_minute_s * (duration or 0.0) / 60.0


def gap_points(times: list[float], duration: float | None, gap: float) -> list[list[float]]:
    """Times to add where the sampled `times` leave more than `gap` seconds uncovered.

    Each inner list is one gap's points (evenly spaced, in order), so the caller
    can fetch a gap's frames with one seek and one decode run. The span before
    the first frame and after the last one count as gaps too (up to `duration`).
    """
    edges = sorted(times)
    end = duration if duration and duration > 0 else (edges[-1] if edges else 0.0)
    bounds = [0.0, *edges] if not edges or edges[0] > 0 else edges
    out: list[list[float]] = []
    for a, b in zip(bounds, [*bounds[1:], end], strict=True):
        if b - a <= gap:
            continue
        n = math.ceil((b - a) / gap) - 1
        step = (b - a) / (n + 1)
        out.append([round(a + step * (i + 1), 3) for i in range(n)])
    return out


def thumb(pixels: np.ndarray, side: int = 8) -> np.ndarray:
    """A `side` x `side` thumbnail as float32, by block averaging: of the grey (luma)
    picture for RGB input, of the plane itself for a 2-D array."""
    if pixels.ndim == 3:
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        plane = pixels[..., :3].astype(np.float32) @ weights
    else:
        plane = pixels.astype(np.float32)
    h, w = plane.shape
    rows = np.linspace(0, h, min(side, h) + 1).astype(int)
    cols = np.linspace(0, w, min(side, w) + 1).astype(int)
    rows[-1], cols[-1] = h, w
    out = np.add.reduceat(np.add.reduceat(plane, rows[:-1], axis=0), cols[:-1], axis=1)
    counts = np.outer(np.diff(rows), np.diff(cols)).clip(min=1)
    return (out / counts).astype(np.float32)


def is_black(pixels: np.ndarray, settings: VideoSampling) -> bool:
    """Dark and flat: a fade, a lens cap, the black second before a phone's first frame.

    "Dark" is measured on each pixel's brightest channel, so a deep blue or red
    (a sky at dusk, a title card) is not mistaken for black as its luma would be."""
    value = thumb(pixels[..., :3].max(axis=2), 32)
    return float(value.mean()) < settings.black_luma and float(value.std()) < settings.black_spread


class Prefilter:
    """Drops black frames and near-duplicates of the last kept frame as frames
    arrive, and applies the per-minute and total caps as they go.

    ffmpeg's output streams through one of these, so memory holds at most
    `max_frames` frames (one more while a new one is weighed, plus those whose
    time `time_of` does not know yet), however many keyframes or cuts a video
    has; the darkest-case fallback (every frame black) keeps the brightest one
    seen. `time_of(key)` gives a frame's time in seconds, or None while unknown;
    without it only the black and duplicate rules apply. `peak` is the most
    frames held at once.
    """

    def __init__(
        self, settings: VideoSampling, time_of: Callable[[int], float | None] | None = None
    ) -> None:
        self._settings = settings
        self.time_of = time_of
        self._last: np.ndarray | None = None
        self._brightest: tuple[float, int, np.ndarray] | None = None
        self.kept: list[tuple[int, np.ndarray]] = []
        self.peak = 0

    def offer(self, key: int, pixels: np.ndarray) -> None:
        """Consider frame `key` (its index, in time order)."""
        small = thumb(pixels)
        if is_black(pixels, self._settings):
            level = float(small.mean())
            if self._brightest is None or level > self._brightest[0]:
                self._brightest = (level, key, pixels)
            return
        diff = self._settings.duplicate_diff
        if self._last is not None and float(np.abs(small - self._last).mean()) < diff:
            return
        self.kept.append((key, pixels))
        self._last = small
        self.peak = max(self.peak, len(self.kept))
        if self.time_of is not None:
            self._cap(self.time_of)

    def _cap(self, time_of: Callable[[int], float | None]) -> None:
        """Drop frames (the least new coverage first) until the frames whose time is
        known fit the caps: the newest one's minute, then the total."""
        times: list[float] = []
        for key, _ in self.kept:
            at = time_of(key)
            if at is None:
                break  # times arrive in order: the rest are newer still
            times.append(at)
        if not times:
            return
        minute = int(times[-1] // 60)
        per_minute = max(1, self._settings.per_minute)
        while len(inside := _in_minute(times, minute)) > per_minute:
            drop = _most_crowded(times, inside)
            del times[drop], self.kept[drop]
        while len(times) > max(1, self._settings.max_frames):
            drop = _most_crowded(times, range(len(times)))
            del times[drop], self.kept[drop]

    def result(self) -> list[tuple[int, np.ndarray]]:
        """The kept frames; the brightest black one when nothing else was kept."""
        if self.kept or self._brightest is None:
            return self.kept
        return [(self._brightest[1], self._brightest[2])]


def select_frames(frames: list[VideoFrame], settings: VideoSampling) -> list[VideoFrame]:
    """The frames worth analysing, in time order; never empty when `frames` is not.

    Black frames and near-duplicates of the previous kept frame go first, then the
    caps. When every frame is black, the brightest one stays: a clip is always
    represented by at least one picture.
    """
    ordered = sorted(frames, key=lambda f: f.at)
    keep = Prefilter(settings)
    for i, frame in enumerate(ordered):
        keep.offer(i, frame.pixels)
    return cap([ordered[i] for i, _ in keep.result()], settings.per_minute, settings.max_frames)


def cap(frames: list[VideoFrame], per_minute: int, total: int) -> list[VideoFrame]:
    """At most `per_minute` frames in each minute and `total` in all, dropping each
    time the frame that adds the least coverage (see `_most_crowded`)."""
    out = list(frames)
    times = [f.at for f in out]
    for minute in sorted({int(t // 60) for t in times}):
        while len(inside := _in_minute(times, minute)) > max(1, per_minute):
            drop = _most_crowded(times, inside)
            del times[drop], out[drop]
    while len(out) > max(1, total):
        drop = _most_crowded(times, range(len(out)))
        del times[drop], out[drop]
    return out


def _in_minute(times: Sequence[float], minute: int) -> list[int]:
    return [i for i, t in enumerate(times) if int(t // 60) == minute]


def _most_crowded(times: Sequence[float], candidates: Iterable[int]) -> int:
    """Index (among `candidates`, of `times` in order) of the frame to drop: the
    one closest after its predecessor, so of two frames close together the later
    goes and the opening frame of a scene stays. On a tie, the one whose
    neighbours are closest in time (the smallest hole left behind; the last frame
    leaves an open end, so it goes last), then the later one. Evenly spaced frames
    are so thinned evenly, not cut off at the end."""
    best, best_key = -1, (math.inf, math.inf, 0)
    for i in candidates:
        before = times[i] - times[i - 1] if i > 0 else math.inf
        hole = times[i + 1] - times[i - 1] if 0 < i < len(times) - 1 else math.inf
        key = (before, hole, -i)
        if best < 0 or key < best_key:
            best, best_key = i, key
    return best
