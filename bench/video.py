"""Video benchmark: what a 50-second 720p phone clip costs, and where the time goes.

    .venv/bin/python bench/video.py [--seconds 50] [--clips 3] [--analyzers metadata,tagger,faces]

Makes clips with ffmpeg from real photos (scikit-image's chelsea, coffee, camera,
astronaut, rocket: one scene each, cut on keyframes as phones' encoders do) at
1280x720, 30 fps, H.264 with a keyframe every 1.2 s as phones write (and one clip
with x264's default 10 s, the worst case for sampling), then prints:

* sampling one clip as vaultd does (keyframes, gaps filled, black and repeated
  frames skipped) against decoding every frame with ffmpeg (the baseline, same run),
  and how many frames were kept. The scenes are still pictures drifting a few
  pixels, which decode far more cheaply than real footage: the full decode here is
  a lower bound of a phone clip's;
* a real vaultd indexing the clips with the analyzers given: seconds per clip,
  clips/s, and the share of that time spent decoding (the decode stage's seconds
  from vaultd's own metrics).

Target (issue 19): a 50 s clip indexed in well under a minute on 2 cores.
The tagger is installed into a temporary model store first when it is enabled.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))


def make_clips(folder: Path, count: int, seconds: float, keyint: int | None = 36) -> list[Path]:
    from skimage import data

    from helpers.videos import make_clip

    names = ("chelsea", "coffee", "camera", "astronaut", "rocket")
    per = seconds / len(names)
    out = []
    for i in range(count):
        order = names[i % len(names) :] + names[: i % len(names)]
        scenes = [(getattr(data, n)(), per) for n in order]
        out.append(
            make_clip(
                folder / f"clip_{i:02d}.mp4",
                scenes,
                size=(1280, 720),
                fps=30,
                keyint=keyint,
                preset="veryfast",  # B-frames, as phones' encoders write
            )
        )
    return out


def full_decode_seconds(path: Path) -> float:
    """ffmpeg decoding every frame to nothing: what sampling saves us from."""
    start = time.perf_counter()
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-threads",
            "2",
            "-i",
            str(path),
            "-f",
            "null",
            "-",
        ],
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=50.0)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--analyzers", default="metadata,tagger")
    ap.add_argument("--side", type=int, default=320, help="frame size the analyzers ask for")
    args = ap.parse_args()

    from photovault.media.video import decode_video

    work = Path(tempfile.mkdtemp(prefix="pv-video-"))
    try:
        print(f"making {args.clips} clips of {args.seconds:.0f} s at 1280x720 ...", flush=True)
        clips = make_clips(work / "clips", args.clips, args.seconds)
        (sparse,) = make_clips(work / "sparse", 1, args.seconds, keyint=None)
        mb = clips[0].stat().st_size / 1e6
        full = min(full_decode_seconds(clips[0]) for _ in range(2))
        started = time.perf_counter()
        image = decode_video(clips[0], args.side)
        sampled = time.perf_counter() - started
        started = time.perf_counter()
        decode_video(sparse, args.side)
        sampled_sparse = time.perf_counter() - started
        frames = image.frames or []
        print(
            f"one clip: {mb:.1f} MB, {image.duration:.1f} s, {len(frames)} frames kept "
            f"at {', '.join(f'{f.at:.1f}' for f in frames[:12])}{' ...' * (len(frames) > 12)}"
        )
        print(
            f"sampling as vaultd does: {sampled:.2f} s; decoding every frame: {full:.2f} s "
            f"(sampling costs {sampled / full * 100:.0f}% of a full decode)",
            flush=True,
        )
        print(
            f"the same clip with x264's default keyframe interval (10 s; gaps filled by "
            f"seeking): sampling {sampled_sparse:.2f} s",
            flush=True,
        )

        analyzers = args.analyzers.split(",")
        models = None
        if "tagger" in analyzers:
            from photovault.models.install import install

            models = work / "models"
            install(models, "tagger", "efficientnet-lite0")
        from ingest import run_vaultd

        res = run_vaultd(clips, 2, analyzers, 16, models=models, decode_seconds=True)
        per_clip = res["elapsed"] / len(clips)
        print(
            f"vaultd ({','.join(analyzers)}): {len(clips)} clips in {res['elapsed']:.1f} s: "
            f"{per_clip:.1f} s per {args.seconds:.0f}-s clip, {1 / per_clip:.3f} clips/s "
            f"(target: well under 60 s per clip)"
        )
        print(
            f"share of the time spent decoding (vaultd's decode stage): "
            f"{res['decode'] / res['elapsed'] * 100:.0f}%"
        )
        print(
            f"vaultd peak RSS: main {res['rss_main']:.0f} MiB, decode workers "
            f"{res['rss_workers']:.0f} MiB"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
