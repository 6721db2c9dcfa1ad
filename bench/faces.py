"""Faces benchmark: detector speed/accuracy on CPU and clustering precision/recall.

    .venv/bin/python bench/faces.py [--skip-cnn] [--threads N]

Data (all offline, see tests/fixtures/faces/README.md): Obama x3, Biden x1
(public-domain White House photos from the face_recognition sdist), the
scikit-image astronaut (NASA, public domain) and camera, plus faceless
scikit-image photos (coffee, chelsea, rocket) for false positives.

Clustering is scored on two sets, reported apart because they measure
different things:
* "distinct photos": the 5 real photos only (3 same-person pairs);
* "edited copies": each photo in 7 versions (flip, crop, rescale, darker,
  rotate 8 degrees, JPEG q30, original): robustness to edits, not to new
  photos of a person, so it flatters recall.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

import rss  # bench/rss.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "faces"


def fit(pixels: np.ndarray, side: int) -> np.ndarray:
    """What the decoder hands the analyzer: long side `side`, never upscaled."""
    image = Image.fromarray(pixels)
    scale = side / max(image.size)
    if scale < 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image)


def photos() -> tuple[dict[str, np.ndarray], dict[str, str], list[np.ndarray]]:
    from skimage import data

    faces = {
        p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(FIXTURES.glob("*.jpg"))
    }
    faces["astronaut"] = data.astronaut()
    identity = {k: ("obama" if k.startswith("obama") else k) for k in faces}
    camera = np.stack([data.camera()] * 3, axis=-1)
    faceless = [data.coffee(), data.chelsea(), data.rocket()]
    return faces | {"camera": camera}, identity, faceless


def edits(pixels: np.ndarray) -> dict[str, np.ndarray]:
    image = Image.fromarray(pixels)
    w, h = image.size
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=30)
    return {
        "original": pixels,
        "flip": np.asarray(ImageOps.mirror(image)),
        "crop": np.asarray(image.crop((w // 8, 0, w - w // 8, h * 3 // 4))),
        "rescale": np.asarray(image.resize((w * 3 // 5, h * 3 // 5), Image.Resampling.BILINEAR)),
        "dark": np.asarray(ImageEnhance.Brightness(image).enhance(0.6)),
        "rotate": np.asarray(image.rotate(8, resample=Image.Resampling.BILINEAR, expand=True)),
        "jpeg30": np.asarray(Image.open(buf).convert("RGB")),
    }


def bench_detectors(state: Path, skip_cnn: bool) -> None:
    from photovault.analyze.faces import FacesAnalyzer, FaceSettings, build_engine

    faces, _, faceless = photos()
    configs = [("dlib", 0), ("dlib", 1), ("opencv", 0)] + ([] if skip_cnn else [("dlib_cnn", 0)])
    print("== detectors (image_side 1024, CPU; one face expected per labelled photo)")
    print(
        f"{'detector':<10} {'up':>2} {'load_s':>6} {'found':>7} {'missed':<10} {'false+':>6} "
        f"{'s/photo':>8} {'faces/s':>8}"
    )
    for detector, upsample in configs:
        min_score = 0.3 if detector == "dlib" else 0.0  # HOG margin; others score differently
        cfg = FaceSettings(detector=detector, upsample=upsample, min_score=min_score)
        t0 = time.perf_counter()
        analyzer = FacesAnalyzer(build_engine(cfg, state), cfg)
        load = time.perf_counter() - t0
        found, missed, false_pos, seconds, total_faces = 0, [], 0, 0.0, 0
        for name, px in list(faces.items()) + [(f"none{i}", p) for i, p in enumerate(faceless)]:
            px = fit(px, cfg.image_side)
            t0 = time.perf_counter()
            result = analyzer.analyze_pixels(px)["faces"]
            seconds += time.perf_counter() - t0
            total_faces += len(result)
            if name.startswith("none"):
                false_pos += len(result)
            elif len(result) >= 1:
                found += 1
                false_pos += len(result) - 1
            else:
                missed.append(name)
        n = len(faces) + len(faceless)
        print(
            f"{detector:<10} {upsample:>2} {load:>6.2f} {found:>3}/{len(faces):<3} "
            f"{','.join(missed) or '-':<10} {false_pos:>6} {seconds / n:>8.3f} "
            f"{total_faces / seconds:>8.2f}"
        )


def bench_clustering(state: Path) -> None:
    from photovault.analyze.faces import FacesAnalyzer, FaceSettings, build_engine
    from photovault.people.cluster import as_matrix, dbscan, pair_scores, pairwise
    from photovault.people.store import PeopleStore

    faces, identity, _ = photos()
    faces.pop("camera")  # HOG (the default) does not find the turned face
    cfg = FaceSettings()
    analyzer = FacesAnalyzer(build_engine(cfg, state), cfg)
    rows: list[tuple[str, str, str, list[float]]] = []  # (photo, edit, identity, embedding)
    t0 = time.perf_counter()
    for name, px in faces.items():
        for edit, variant in edits(px).items():
            found = analyzer.analyze_pixels(fit(variant, cfg.image_side))["faces"]
            if found:
                best = max(found, key=lambda f: f["box"][2])
                rows.append((name, edit, identity[name], best["embedding"]))
            else:
                print(f"  no face found in {name}/{edit}")
    elapsed = time.perf_counter() - t0
    print(
        f"\n== clustering, model Dlib, detector dlib: {len(rows)} faces embedded in "
        f"{elapsed:.1f} s ({len(rows) / elapsed:.2f} faces/s incl. detection)"
    )
    x = as_matrix([r[3] for r in rows], "euclidean")
    truth = [r[2] for r in rows]
    d = pairwise(x, x, "euclidean")
    same = [
        d[i, j] for i in range(len(rows)) for j in range(i + 1, len(rows)) if truth[i] == truth[j]
    ]
    diff = [
        d[i, j] for i in range(len(rows)) for j in range(i + 1, len(rows)) if truth[i] != truth[j]
    ]
    print(
        f"same-person distance: max {max(same):.3f}, mean {np.mean(same):.3f}; "
        f"different people: min {min(diff):.3f}, mean {np.mean(diff):.3f}"
    )
    originals = [i for i, r in enumerate(rows) if r[1] == "original"]
    print(f"{'eps':>5} {'edited P':>9} {'edited R':>9} {'distinct P':>11} {'distinct R':>11}")
    for eps in (0.4, 0.45, 0.5, 0.55, 0.6):
        labels = dbscan(x, eps, "euclidean")
        p, r = pair_scores(truth, labels)
        sub = x[originals]
        # 3 distinct Obama photos: min_neighbours 3 is exactly reachable
        sub_labels = dbscan(sub, eps, "euclidean")
        sp, sr = pair_scores([truth[i] for i in originals], sub_labels)
        print(f"{eps:>5.2f} {p:>9.3f} {r:>9.3f} {sp:>11.3f} {sr:>11.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        store = PeopleStore.for_settings(Path(tmp), cfg)
        ids = [
            store.add_photo_faces(
                f"{r[0]}/{r[1]}",
                [{"box": [0, 0, 1, 1], "score": 1, "embedding": r[3], "model": "Dlib"}],
            )[0]
            for r in rows
        ]
        t0 = time.perf_counter()
        store.cluster()
        took = time.perf_counter() - t0
        labels = [store.person_of(i) or -1 for i in ids]
        p, r = pair_scores(truth, labels)
        print(
            f"PeopleStore.cluster() with the defaults (eps {cfg.cluster_distance}): "
            f"precision {p:.3f}, recall {r:.3f}, {len(store.people())} people, {took:.3f} s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cnn", action="store_true", help="skip the slow dlib CNN detector")
    parser.add_argument("--state", type=Path, help="state dir (weights copied there)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "daemon"))
    state = args.state or Path(tempfile.mkdtemp(prefix="faces-bench-"))
    import dlib

    print(f"dlib {dlib.__version__}, cpus {os.cpu_count()}, state {state}")
    bench_detectors(state, args.skip_cnn)
    bench_clustering(state)
    return 0


if __name__ == "__main__":
    code = main()
    rss.report()
    raise SystemExit(code)
