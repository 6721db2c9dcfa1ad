"""Make real video files for tests with the installed ffmpeg (no mocks, no downloads).

`make_clip` renders a list of scenes (an image shown for some seconds each) into a
real encoded file, with the things phones add: a rotation in the display matrix,
a capture time, a GPS position. Frames drift a few pixels so consecutive frames
are similar but not identical, as in footage from a hand-held camera.

Sizes: `size` is the picture as ENCODED (stored) in the file. With `rotate` 90 or
270 the player turns it, so the displayed (upright) picture is `size` swapped;
each scene image is fitted into that displayed frame, so after autorotation the
scene looks exactly as given (a face stays upright), like a phone held upright.

Real photos for scenes: `skimage.data.chelsea()`, `coffee()`, `astronaut()`,
`rocket()` are in the venv; `solid(color)` below gives a plain (e.g. black) scene.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"

#: Video codec per container when the caller keeps the default (libx264 cannot go in WebM).
_CODEC_FOR_EXT = {"webm": "libvpx-vp9"}

#: Pixels the picture drifts over a scene, so frames differ a little (hand-held look).
_DRIFT = 6


def solid(color: tuple[int, int, int] = (0, 0, 0), size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A one-colour RGB image (black by default), e.g. a black intro scene."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = color
    return img


def _load(scene: np.ndarray | Path) -> np.ndarray:
    if isinstance(scene, Path):
        with Image.open(scene) as im:
            return np.asarray(im.convert("RGB"))
    arr = np.asarray(scene)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return arr[:, :, :3].astype(np.uint8)


def fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale and centre-crop `img` to cover `size` (w, h) exactly, keeping its aspect.

    This is how a scene fills the frame, so tests can compare decoded frames with
    `fit(scene, frame_size)` to tell which scene a frame shows."""
    w, h = size
    ih, iw = img.shape[:2]
    scale = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
    big = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BILINEAR))
    x, y = (nw - w) // 2, (nh - h) // 2
    return big[y : y + h, x : x + w]


def _frames(scene: np.ndarray, seconds: float, fps: int, display: tuple[int, int], rotate: int):
    """Yield the stored RGB frames of one scene: drifting crops, turned back by `rotate`.

    The picture moves one pixel at a time, so there are only `_DRIFT + 1` distinct
    frames per scene, built once: making a clip costs the encoder's time, not ours.
    """
    w, h = display
    canvas = fit(scene, (w + _DRIFT, h + _DRIFT))
    n = max(1, round(seconds * fps))
    crops: dict[int, np.ndarray] = {}
    for i in range(n):
        d = round(_DRIFT * i / max(1, n - 1))
        if d not in crops:
            frame = canvas[d : d + h, d : d + w]
            if rotate:
                # The player turns the stored picture `rotate` degrees clockwise; store
                # it turned the other way so the displayed picture is the scene as given.
                frame = np.rot90(frame, k=rotate // 90)
            crops = {d: np.ascontiguousarray(frame)}
        yield crops[d]


def make_clip(
    path: Path,
    scenes: list[tuple[np.ndarray | Path, float]],
    *,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    rotate: int = 0,
    creation_time: str | None = None,
    gps: tuple[float, float] | None = None,
    keyint: int | None = None,
    codec: str = "libx264",
    cut_keyframes: bool = True,
    audio: bool = False,
    keys: dict[str, str] | None = None,
    scene_cuts: bool = True,
    preset: str = "ultrafast",
) -> Path:
    """Encode `scenes` (image or image file, seconds shown) into a video at `path`.

    The container follows the extension (.mp4 .mov .mkv .avi .3gp .webm ...).
    `size` is the stored (encoded) width, height; `rotate` (0/90/180/270, clockwise)
    goes in the display matrix, so players and ffmpeg show `size` swapped for 90/270.
    `creation_time` ("2024-06-01T12:00:00Z", UTC in the movie header as cameras
    write it) and `gps` (lat, lon; ISO 6709 in a `©xyz` atom, as Android writes it,
    MP4/MOV only) are written as phones do. `keys` adds QuickTime metadata keys as
    an iPhone writes them, e.g. {"com.apple.quicktime.creationdate":
    "2024-06-01T14:00:00+0200", "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.content.identifier": "ABC"}; exiftool reads them as
    Keys:CreationDate, Keys:Make, Keys:ContentIdentifier. `keyint` caps the frames
    between keyframes (x264's default is 250). With `cut_keyframes`, each scene starts
    on a keyframe, as x264's scene-cut detection does, but deterministically.
    `scene_cuts=False` turns x264's own scene-cut keyframes off (with
    `cut_keyframes=False` too, only `keyint` places keyframes). `preset` is x264's:
    "ultrafast" makes clips quickly; "veryfast" gives B-frames and CABAC, closer to
    what a phone writes and slower to decode. `audio` adds a tone. Rotation, `keys`
    and `gps` need MP4/MOV/3GP. Returns `path`.
    """
    if rotate % 90 or rotate not in (0, 90, 180, 270):
        raise ValueError(f"rotate must be 0, 90, 180 or 270, not {rotate}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower().lstrip(".")
    if codec == "libx264":
        codec = _CODEC_FOR_EXT.get(ext, codec)
    w, h = size
    display = (h, w) if rotate in (90, 270) else (w, h)

    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps)]
    cmd += ["-i", "pipe:"]
    total = sum(round(max(1, round(s * fps))) for _, s in scenes) / fps
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={total}"]
    cmd += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac", "-shortest"] if audio else [])
    cmd += ["-c:v", codec, "-pix_fmt", "yuv420p"]
    if codec == "libx264":
        # ultrafast alone turns scene-cut detection off; x264's default is 40.
        cmd += ["-preset", preset, "-crf", "26"]
        cmd += ["-x264-params", f"scenecut={40 if scene_cuts else 0}"]
    elif codec.startswith("libvpx"):
        cmd += ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"]
    else:  # mpeg4, mpeg2video, wmv2, mjpeg ...: ffmpeg's default 200 kb/s is a smear
        cmd += ["-q:v", "4"]
    if keyint:
        cmd += ["-g", str(keyint)]
    if cut_keyframes and len(scenes) > 1:
        starts, t = [], 0.0
        for _, seconds in scenes[:-1]:
            t += max(1, round(seconds * fps)) / fps
            starts.append(f"{t:.3f}")
        cmd += ["-force_key_frames", ",".join(starts)]
    if creation_time:
        cmd += ["-metadata", f"creation_time={creation_time}"]
    remux = bool(rotate or keys)
    encoded = path.with_name(f".encoding-{path.name}") if remux else path
    cmd.append(str(encoded))

    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for scene, seconds in scenes:
            for frame in _frames(_load(scene), seconds, fps, display, rotate):
                proc.stdin.write(memoryview(frame))
    except BrokenPipeError:
        pass
    finally:
        proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {err.strip()}")
    if remux:
        _remux(encoded, path, rotate, keys or {})
    if gps:
        _write_xyz(path, gps)
    return path


def _remux(src: Path, dst: Path, rotate: int, keys: dict[str, str]) -> None:
    """Copy the streams into `dst`, adding the display matrix and QuickTime keys.

    ffmpeg 5.1 sets the display matrix from a `rotate` tag only when copying
    streams, and reads the tag's angle counter-clockwise (ffmpeg 7 has
    -display_rotation instead), hence the 360 - rotate.
    """
    cmd = [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-map", "0"]
    cmd += ["-c", "copy", "-map_metadata", "0"]
    if rotate:
        cmd += ["-metadata:s:v:0", f"rotate={(360 - rotate) % 360}"]
    if keys:
        cmd += ["-movflags", "use_metadata_tags"]
        for key, value in keys.items():
            cmd += ["-metadata", f"{key}={value}"]
    cmd.append(str(dst))
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    finally:
        src.unlink(missing_ok=True)


def _write_xyz(path: Path, gps: tuple[float, float]) -> None:
    """Write the position as Android does: ISO 6709 text in a `©xyz` user-data atom.

    ffmpeg's MP4 muxer writes a 3GPP `loci` atom instead, so exiftool writes this one.
    """
    lat, lon = gps
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-n",
         f"-UserData:GPSCoordinates={lat} {lon}", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip


def make_audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An .mp4 (or other container by extension) with a sine tone and no video stream."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to `keep` of its bytes in place, as an interrupted copy leaves it.

    For an MP4 written by ffmpeg (moov at the end) this drops the moov atom, so
    ffprobe answers "moov atom not found".
    """
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def make_motion_photo(
    path: Path, still: np.ndarray, clip: Path, *, style: str = "google", flag_only: bool = False
) -> Path:
    """A motion photo: `still` as a JPEG with the video file `clip` appended.

    `style` "google" writes Camera XMP Motion Photo 1.0 (GCamera:MotionPhoto="1",
    MotionPhotoVersion, MotionPhotoPresentationTimestampUs and a Container:Directory
    whose MotionPhoto item gives the clip's length); "microvideo" the older
    GCamera:MicroVideo="1" with MicroVideoOffset; "samsung" no XMP but the clip after
    a `MotionPhoto_Data` marker, followed by a SEF trailer. `flag_only` writes the
    XMP without the clip, as an editor that drops it leaves the file.
    """
    import io
    import struct

    buf = io.BytesIO()
    Image.fromarray(_load(still)).save(buf, "JPEG", quality=88)
    jpeg = buf.getvalue()
    video = b"" if flag_only else Path(clip).read_bytes()
    if style == "samsung":
        marker = b"MotionPhoto_Data"
        # Samsung's SEF trailer: entries, then the directory, then "SEFH" size "SEFT".
        sef = b"SEFH" + struct.pack("<III", 106, 1, 0x0A30) + struct.pack("<I", len(video) + 16)
        sef += struct.pack("<I", len(marker) + len(video)) + struct.pack("<I", len(sef) + 8)
        data = jpeg + marker + video + sef + b"SEFT"
    else:
        if style == "microvideo":
            fields = (
                'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" '
                f'GCamera:MicroVideoOffset="{len(video)}" '
                'GCamera:MicroVideoPresentationTimestampUs="500000"'
            )
            directory = ""
        else:
            fields = (
                'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" '
                'GCamera:MotionPhotoPresentationTimestampUs="500000"'
            )
            directory = (
                "<Container:Directory><rdf:Seq>"
                '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" '
                'Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/></rdf:li>'
                '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" '
                f'Item:Semantic="MotionPhoto" Item:Length="{len(video)}" Item:Padding="0"/>'
                "</rdf:li></rdf:Seq></Container:Directory>"
            )
        xmp = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" '
            'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
            'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
            'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
            f"{fields}>{directory}</rdf:Description></rdf:RDF></x:xmpmeta>"
        ).encode()
        payload = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
        app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
        data = jpeg[:2] + app1 + jpeg[2:] + video
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
