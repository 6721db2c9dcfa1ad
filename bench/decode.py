"""Decode benchmark: images/s for camera-like 12-MP JPEGs at the analyzers' size.

Prints three rates on the same files: Pillow's full decode + resize (what a
naive loader does), our `decode_image` in one process, and `decode_image` in a
spawn-context process pool like the pipeline's. The files are synthetic but
sized like a phone's or a camera's: 4000x3000, gradients, blotchy texture and
sensor-like noise, about 3.6 MB at quality 92 - JPEG decode time follows the
compressed size (Huffman decoding is the floor), so that is what we match.

    python bench/decode.py [--count 40] [--workers 2] [--side 224] [--dir DIR]

`bench/ingest.py` imports `make_camera_jpegs` and `decode_only_rate` from here.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import photovault  # noqa: F401
except ImportError:  # running from a checkout without `make install`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from photovault.media.decode import decode_image

WIDTH, HEIGHT = 4000, 3000
QUALITY = 92


def _camera_base(seed: int = 0) -> np.ndarray:
    """One 12-MP RGB frame: smooth gradients, mid-frequency texture, fine noise.

    Generating noise for 36 M samples takes about a second, so we do it once and
    derive every file from it by shifting and flipping (see make_camera_jpegs).
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    base = np.stack(
        [160 * y + 60 * x, 120 + 80 * np.sin(6 * x + 3 * y), 200 - 150 * y * x], axis=-1
    )
    low = rng.normal(128, 25, (HEIGHT // 16, WIDTH // 16, 3)).clip(0, 255).astype(np.uint8)
    texture = np.asarray(
        Image.fromarray(low).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.float32
    )
    base += texture - 128
    base += rng.normal(0, 6, base.shape).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def make_camera_jpegs(folder: Path, count: int) -> list[Path]:
    """Write `count` distinct camera-like 4000x3000 JPEGs (~3.6 MB each) into `folder`.

    Files already there with the expected names are reused, so repeated runs
    with `--dir` skip the generation.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"cam_{i:04}.jpg" for i in range(count)]
    missing = [p for p in paths if not p.exists()]
    if not missing:
        return paths
    base = _camera_base()
    exif = Image.Exif()
    exif[0x010F] = "Photo Vault"  # Make
    exif[0x0110] = "Bench Camera"  # Model
    exif[0x0112] = 1  # Orientation
    for i, path in enumerate(paths):
        if path.exists():
            continue
        frame = np.roll(base, (i * 397 % HEIGHT, i * 1231 % WIDTH), axis=(0, 1))
        if i % 2:
            frame = frame[:, ::-1]
        tmp = path.with_suffix(".part")
        Image.fromarray(frame).save(tmp, "JPEG", quality=QUALITY, exif=exif)
        tmp.replace(path)
    return paths


def _full_decode(path: Path, target_side: int) -> tuple[int, int]:
    """The naive path: decode every pixel, then resize."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        w, h = rgb.size
        scale = target_side / max(w, h)
        small = rgb.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        return small.size


def full_decode_rate(paths: Sequence[Path], target_side: int) -> float:
    """Images/s for Pillow's full decode + resize in this process."""
    _full_decode(paths[0], target_side)
    started = time.perf_counter()
    for path in paths:
        _full_decode(path, target_side)
    return len(paths) / (time.perf_counter() - started)


def decode_only_rate(paths: Sequence[Path], target_side: int, workers: int) -> float:
    """Images/s for `decode_image` over `paths`, in-process or in a spawn pool.

    Worker start-up (interpreter, imports) is excluded: each worker decodes one
    file before the clock starts, as a long-running daemon's pool would have.
    Pixels travel back to this process, as they do in the pipeline.
    """
    paths = [Path(p) for p in paths]
    task = functools.partial(decode_image, target_side=target_side)
    if workers <= 1:
        task(paths[0])
        started = time.perf_counter()
        for path in paths:
            task(path)
        return len(paths) / (time.perf_counter() - started)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(task, paths[: workers * 2]))
        started = time.perf_counter()
        for _ in pool.map(task, paths, chunksize=1):
            pass
        return len(paths) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="number of JPEGs (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="pool processes (default 2)")
    parser.add_argument("--side", type=int, default=224, help="target long side (default 224)")
    parser.add_argument("--dir", type=Path, help="folder for the JPEGs (default: a temp folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pv-decode-bench-") as tmp:
        folder = args.dir or Path(tmp)
        started = time.perf_counter()
        paths = make_camera_jpegs(folder, args.count)
        sizes = [p.stat().st_size / 1e6 for p in paths]
        print(
            f"{len(paths)} JPEGs {WIDTH}x{HEIGHT} q{QUALITY}, median {statistics.median(sizes):.1f}"
            f" MB, ready in {time.perf_counter() - started:.1f} s"
        )
        sample = decode_image(paths[0], args.side)
        print(f"decode_image source: {sample.source}, output {sample.pixels.shape}")
        rows = [
            ("Pillow full decode + resize, 1 process", full_decode_rate(paths, args.side)),
            ("decode_image, 1 process", decode_only_rate(paths, args.side, 1)),
            (
                f"decode_image, {args.workers} spawn processes",
                decode_only_rate(paths, args.side, args.workers),
            ),
        ]
        for name, rate in rows:
            print(f"{name:<42} {rate:7.1f} img/s  {1000 / rate:6.1f} ms/img")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
