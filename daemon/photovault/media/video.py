"""Videos through ffmpeg: probe, sample a few upright frames, fetch one frame.

Why ffmpeg and subprocesses: it decodes every codec a phone or camera writes,
applies the display matrix (autorotation) itself, and a child process that hangs
or crashes on a broken file costs that file only (each call has a timeout).

Cost on a 2-core NAS is what shapes `decode_video`: one pass decodes keyframes
only (`-skip_frame nokey`, no P/B frames), which x264 and phones place at scene
cuts and about every second or few; only where keyframes are sparser than the
sampling gap does a second, seeking run decode the frames in between. The
choice among those frames is media/videosample.py's, and its caps apply while
frames stream in, so one decode holds at most about `max_frames` of them.
Frames come out upright RGB uint8, scaled so the long side is at most the
working size and at most VIDEO_MAX_SIDE: analyzers may ask for 4096 px (faces,
text), but the most one decode holds, `max_frames` keyframes plus about as many
frames from the gaps, 120 frames x 768x432 RGB, is about 120 MB, where as many
4K frames would be 3 GB.

Every failure is a `MediaError` naming the problem as ffmpeg saw it (its last
error line: "not a playable video: moov atom not found", "no video stream").
ffmpeg missing or unable to run (not on PATH, not executable, a missing shared
library) is a `ToolMissing`, an installation problem rather than a bad file; an
ffmpeg killed by a signal (the OOM killer) or past its timeout is a
`VideoTransient`: the file may be fine, so it is tried again later. How a failure
is read is media/ffmpeg.py's.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photovault.media.ffmpeg import (
    INSTALL_HINT,
    TOOL_MISSING_PREFIX,
    StderrLog,
    ToolMissing,
    VideoTransient,
    cannot_exec,
    check_exit,
    check_tool,
    run_tool,
    unplayable,
)
from photovault.media.types import DecodedImage, MediaError, VideoFrame
from photovault.media.videosample import Prefilter, VideoSampling, gap_points, select_frames

log = logging.getLogger(__name__)

__all__ = [
    "TOOL_MISSING_PREFIX",
    "VIDEO_MAX_SIDE",
    "ToolMissing",
    "VideoProbe",
    "VideoSampling",
    "VideoTransient",
    "check_tool",
    "decode_video",
    "frame_at",
    "probe",
]

SOURCE = "video-keyframes"
DEFAULT_SAMPLING = VideoSampling()
#: Long side, in pixels, of sampled video frames whatever the analyzers' working
#: size (120 frames x 768x432 RGB = 120 MB at worst; see the module docstring).
VIDEO_MAX_SIDE = 768
#: Seconds to wait for a frame's time from stderr before weighing it without one.
_TIME_WAIT_S = 2.0
#: ffmpeg's scene score (0-1) between consecutive keyframes above which one is a cut.
_SCENE_SCORE = 0.3


@dataclass(frozen=True)
class VideoProbe:
    """What ffprobe says about a video's first video stream.

    `width` and `height` are the displayed size, after the rotation in the display
    matrix (a portrait phone clip stored as 1920x1080 with rotation 90 is 1080x1920);
    `rotation` is clockwise degrees (0, 90, 180, 270).
    """

    duration: float | None
    width: int
    height: int
    rotation: int
    codec: str
    fps: float | None
    frame_count: int | None
    stored_width: int
    stored_height: int


def probe(path: Path | str, *, settings: VideoSampling = DEFAULT_SAMPLING) -> VideoProbe:
    """Read the container and stream headers with ffprobe (no frame is decoded)."""
    path = Path(path)
    cmd = [settings.ffprobe, "-v", "level+error", "-print_format", "json"]
    cmd += ["-show_format", "-show_streams", "--", str(path)]
    proc = run_tool(path, cmd, settings.timeout(None), "ffprobe")
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").splitlines()
        check_exit(path, "ffprobe", proc.returncode, lines)
        raise MediaError(path, unplayable(path, lines))
    try:
        info = json.loads(proc.stdout or b"{}")
    except ValueError:
        raise MediaError(path, "not a playable video: ffprobe gave no readable answer") from None
    streams = [
        s
        for s in info.get("streams", [])
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    if not streams:
        raise MediaError(path, "no video stream")
    stream, fmt = streams[0], info.get("format", {})
    stored_w, stored_h = _int(stream.get("width")), _int(stream.get("height"))
    if not stored_w or not stored_h:
        raise MediaError(path, "not a playable video: the video stream has no picture size")
    rotation = _rotation(stream)
    frame_count = _int(stream.get("nb_frames"))
    if frame_count == 0:
        raise MediaError(path, "not a playable video: the video stream has no frames")
    duration = _float(stream.get("duration")) or _float(fmt.get("duration"))
    swap = rotation in (90, 270)
    return VideoProbe(
        duration=duration,
        width=stored_h if swap else stored_w,
        height=stored_w if swap else stored_h,
        rotation=rotation,
        codec=str(stream.get("codec_name") or "unknown"),
        fps=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
        frame_count=frame_count,
        stored_width=stored_w,
        stored_height=stored_h,
    )


def decode_video(
    path: Path | str, target_side: int, *, settings: VideoSampling = DEFAULT_SAMPLING
) -> DecodedImage:
    """Sample `path` into upright frames whose long side is at most `target_side`
    (and VIDEO_MAX_SIDE).

    The result has kind "video", the duration, the kept frames in time order and,
    as `pixels`, the first of them; `stored_size` is the displayed (upright) size
    of the full video and `orientation` 1, since the frames are already upright.
    """
    path = Path(path)
    if target_side < 1:
        raise ValueError(f"target_side must be positive, got {target_side}")
    info = probe(path, settings=settings)
    size = _scaled(info.width, info.height, min(target_side, VIDEO_MAX_SIDE))
    gap = settings.gap(info.duration)
    # Gaps are measured between all keyframes decoded, dropped duplicates included:
    # a stretch whose keyframes all look alike has been looked at.
    keyframes, times = _keyframes(path, size, info, settings, Prefilter(settings))
    duration = info.duration or (max(times) if times else None)
    extra: list[VideoFrame] = []
    for points in gap_points(times, duration, gap):
        extra += _frames_at(path, points, size, info, settings)
    frames = select_frames(keyframes + extra, settings)
    if not frames:
        raise MediaError(path, "not a playable video: no frame could be decoded")
    return DecodedImage(
        pixels=frames[0].pixels,
        stored_size=(info.width, info.height),
        orientation=1,
        source=SOURCE,
        kind="video",
        duration=duration,
        frames=frames,
    )


def frame_at(
    path: Path | str, at: float, side: int, *, settings: VideoSampling = DEFAULT_SAMPLING
) -> np.ndarray:
    """One upright RGB frame at `at` seconds, long side at most `side` (contact
    sheets, `similar --at`). Seeks exactly: decodes from the keyframe before `at`."""
    path = Path(path)
    info = probe(path, settings=settings)
    if info.duration is not None and at > info.duration:
        raise MediaError(path, f"no frame at {at:g} s: the video lasts {info.duration:g} s")
    if info.duration is not None:
        # The last frame starts one frame before the end: asking for the very end
        # (a contact sheet's last tile) gets that frame, not nothing.
        at = min(at, info.duration - 1.0 / (info.fps or 25.0))
    size = _scaled(info.width, info.height, side)
    frames = _frames_at(path, [max(0.0, at)], size, info, settings)
    if not frames:
        raise MediaError(path, f"no frame could be decoded at {at:g} s")
    return frames[0].pixels


# -- ffmpeg runs -----------------------------------------------------------------


def _keyframes(
    path: Path, size: tuple[int, int], info: VideoProbe, settings: VideoSampling, keep: Prefilter
) -> tuple[list[VideoFrame], list[float]]:
    """The keyframe pass: the kept keyframes (through `keep`, which drops black
    frames and duplicates and applies the caps as they stream) and the times of
    all keyframes decoded."""
    # Keyframes of one shot closer than this are not all worth holding: dropping
    # them inside ffmpeg bounds the work on all-keyframe (intra-only) video.
    spacing = max(0.5, (info.duration or 0.0) / (2 * max(1, settings.max_frames)))
    select = _keyframe_select(spacing)
    return _ffmpeg_frames(path, ["-skip_frame", "nokey"], select, size, info, settings, 0.0, keep)


def _keyframe_select(spacing: float) -> str:
    """The filter for the keyframe pass (run with `-skip_frame nokey`, so ffmpeg sees
    keyframes only): every keyframe whose picture differs from the keyframe before
    (ffmpeg's `scene` score: a cut), others at most one per `spacing` seconds (the
    regular keyframes of a long shot)."""
    return (
        f"select=isnan(prev_selected_t)+gte(t-prev_selected_t\\,{spacing:.3f})"
        f"+gt(scene\\,{_SCENE_SCORE})"
    )


def _frames_at(
    path: Path, points: list[float], size: tuple[int, int], info: VideoProbe, s: VideoSampling
) -> list[VideoFrame]:
    """The first frame at or after each of `points` (in order), in one seeking run:
    ffmpeg jumps to the keyframe before the first point and decodes onwards."""
    start = points[0]
    rel = [p - start for p in points]
    # Frame i is taken when t reaches rel[i] and the previous pick came before rel[i].
    terms = [
        f"gte(t\\,{r:.3f})*(isnan(prev_selected_t)+lt(prev_selected_t\\,{r:.3f}))" for r in rel
    ]
    select = "select=" + "+".join(terms) if len(terms) > 1 else f"select=gte(t\\,{rel[0]:.3f})"
    # -t bounds the read: should a point never be reached (its frames were not
    # decodable), ffmpeg stops a little past the last one instead of at the end.
    span = rel[-1] + max(1.0, s.max_gap_s)
    seek = ["-ss", f"{start:.3f}", "-t", f"{span:.3f}"]
    return _ffmpeg_frames(path, seek, select, size, info, s, start, limit=len(points))[0]


def _ffmpeg_frames(
    path: Path,
    input_args: list[str],
    select: str,
    size: tuple[int, int],
    info: VideoProbe,
    settings: VideoSampling,
    offset: float,
    keep: Prefilter | None = None,
    limit: int | None = None,
) -> tuple[list[VideoFrame], list[float]]:
    """Run ffmpeg with `select`; return the frames it emits, scaled to `size`, and
    the times of all of them (kept or not), in seconds from the start.

    Frames stream as raw RGB on stdout, read one at a time; through `keep` (a
    Prefilter) black frames and near-duplicates are dropped and the caps applied
    as they arrive, so a long all-keyframe or much-cut video never sits in
    memory. Their times come from `showinfo` on stderr (one line per emitted
    frame, in the same order, written before the frame), read as they come.
    ffmpeg's autorotation runs before our filters, so `size` is the upright size.
    """
    w, h = size
    vf = f"{select},scale={w}:{h}:flags=bilinear,showinfo"
    # level+info: each line says its level, so errors are told from the banner.
    cmd = [settings.ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info"]
    # +genpts: AVI stores no presentation times, and keyframe-only decoding leaves
    # its frames without any; generated from the decode times they are right to a frame.
    cmd += ["-threads", str(settings.threads), "-fflags", "+genpts", *input_args]
    cmd += ["-i", str(path)]
    cmd += ["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-fps_mode", "passthrough"]
    cmd += ["-filter_threads", "1"]
    if limit is not None:
        cmd += ["-frames:v", str(limit)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    log_ = StderrLog(offset)
    if keep is not None:
        keep.time_of = log_.time_of  # the caps weigh frames by the times read so far
    frames: list[tuple[int, np.ndarray]] = []
    frame_bytes = w * h * 3

    def take(index: int, chunk: bytes) -> None:
        pixels = np.frombuffer(chunk, np.uint8).reshape(h, w, 3).copy()  # writable, like photos
        if keep is not None:
            log_.wait_for(index, _TIME_WAIT_S)
            keep.offer(index, pixels)
        else:
            frames.append((index, pixels))

    returncode = _stream(path, cmd, settings.timeout(info.duration), frame_bytes, take, log_)
    if returncode != 0:
        check_exit(path, "ffmpeg", returncode, log_.lines)
        raise MediaError(path, unplayable(path, log_.lines))
    if any("partial file" in line for line in log_.lines):
        raise MediaError(path, "truncated video (the file ends early: partial file)")
    times = log_.times
    chosen = keep.result() if keep is not None else frames
    kept = [VideoFrame(at=times[i], pixels=pixels) for i, pixels in chosen if i < len(times)]
    return kept, times


def _stream(
    path: Path,
    cmd: list[str],
    timeout: float,
    frame_bytes: int,
    take: Callable[[int, bytes], None],
    stderr: StderrLog,
) -> int:
    """Run `cmd`, handing each `frame_bytes` of its stdout to `take` as it comes.

    stderr is read line by line by a thread into `stderr` (a full pipe would stall
    ffmpeg); a timer kills a run that exceeds `timeout`. Returns the exit status.
    """
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise ToolMissing(path, INSTALL_HINT) from None
    except OSError as exc:
        raise ToolMissing(path, cannot_exec("ffmpeg", cmd[0], exc)) from None
    assert proc.stdout is not None and proc.stderr is not None
    err = proc.stderr

    def drain() -> None:
        try:
            for raw in err:
                stderr.feed(raw)
        finally:
            stderr.done()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        index = 0
        while len(chunk := proc.stdout.read(frame_bytes)) == frame_bytes:
            take(index, chunk)
            index += 1
        returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        reader.join()
        err.close()
    if timed_out.is_set():
        raise VideoTransient(
            path, f"ffmpeg did not finish within {timeout:.3g} s (unreadable or stalled file?)"
        )
    return returncode


# -- reading ffmpeg's answer -----------------------------------------------------


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation: ffprobe's display-matrix side data gives the angle
    counter-clockwise (-90 for a portrait phone clip); the old `rotate` tag clockwise."""
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            angle = _float(side.get("rotation"))
            if angle is not None:
                return round(-angle / 90) * 90 % 360
    tag = _float((stream.get("tags") or {}).get("rotate"))
    return round(tag / 90) * 90 % 360 if tag is not None else 0


def _scaled(width: int, height: int, target_side: int) -> tuple[int, int]:
    """(w, h) with the long side at most `target_side`, never upscaled."""
    long_side = max(width, height)
    if long_side <= target_side:
        return width, height
    scale = target_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        number = float(str(value))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rate(value: object) -> float | None:
    """Frame rate from ffprobe's "30000/1001" (29.97); None for "0/0" and non-rates."""
    if not isinstance(value, str) or "/" not in value:
        return _float(value)
    num, den = (_float(part) for part in value.split("/", 1))
    return round(num / den, 3) if num and den else None
