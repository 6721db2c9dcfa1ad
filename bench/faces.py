"""Faces benchmark: detector speed/accuracy on CPU and clustering precision/recall.

    .venv/bin/python bench/faces.py [--skip-cnn] [--threads N] [--recall-only]

First, faces found per labelled person, in a two-person photo with one face in
profile, and on faceless photos, with s/photo, for each offline detector (HOG,
MTCNN, both; --recall-only stops there).

Data (all offline, see tests/fixtures/faces/README.md): Obama x3, Biden x1
(public-domain White House photos from the face_recognition sdist), the
scikit-image astronaut (NASA, public domain) and camera, plus faceless
scikit-image photos (coffee, chelsea, rocket) for false positives.

Clustering is scored on three sets, reported apart because they measure
different things:
* "distinct photos": the 5 real photos only (3 same-person pairs);
* "edited copies": each photo in 7 versions (flip, crop, rescale, darker,
  rotate 8 degrees, JPEG q30, original): robustness to edits, not to new
  photos of a person, so it flatters recall;
* "labelled": 21 real photos of 7 labelled people (tests/fixtures/faces/
  labelled, incl. group photos and partly hidden faces), clustered at once
  and in random arrival orders and batches, one pass after each batch.

The full pass (`PeopleStore.cluster`, what vaultd runs at start, when the
queue drains and on a schedule) is timed on synthetic dlib-like embeddings
at 10k and 100k faces, end to end (SQLite snapshot, scan, writing), first
over all-new faces, then after 1% more arrive; meanwhile another thread
stores faces and lists people, as ingest and `vaultctl` do, and their
slowest call is printed:

    .venv/bin/python bench/faces.py --pass-only [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def two_people_one_in_profile() -> np.ndarray:
    """scikit-image's cameraman (head turned, HOG misses it) beside a frontal Biden portrait,
    as in tests/unit/faces/test_profile_faces.py."""
    from skimage import data

    camera = Image.fromarray(data.camera()).convert("RGB")
    frontal = Image.open(FIXTURES / "biden.jpg").convert("RGB")
    frontal = frontal.resize((round(frontal.width * camera.height / frontal.height), camera.height))
    out = Image.new("RGB", (camera.width + frontal.width, camera.height))
    out.paste(camera, (0, 0))
    out.paste(frontal, (camera.width, 0))
    return np.asarray(out)


def bench_recall(state: Path, skip_cnn: bool) -> None:
    """Faces found per labelled person, the profile photo and false hits, per detector
    (issue 16 part 2). Photos decoded as vaultd decodes them (1024 px)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from skimage import data

    from helpers.labelled_faces import identity, labels
    from helpers.labelled_faces import photos as labelled_photos
    from photovault.analyze.faces import FacesAnalyzer, FaceSettings, build_engine
    from photovault.media.decode import decode_image

    known = labels()
    pictures = [(p.name, decode_image(p, 1024).pixels) for p in labelled_photos()]
    people = sorted({person for rows in known.values() for person, _, _ in rows})
    wanted = {
        person: sum(r[0] == person for rows in known.values() for r in rows) for person in people
    }
    faceless = {
        n: np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB"))
        for n in ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field")
    }
    profile = two_people_one_in_profile()
    detectors = ["dlib", "mtcnn_onnx", "dlib+mtcnn"] + ([] if skip_cnn else ["dlib_cnn"])
    columns: dict[str, dict[str, str]] = {}
    for detector in detectors:
        cfg = FaceSettings(detector=detector, upsample=0 if detector == "dlib_cnn" else 1)
        analyzer = FacesAnalyzer(build_engine(cfg, state), cfg)
        analyzer.analyze_pixels(pictures[0][1])  # load the models outside the timing
        found = dict.fromkeys(people, 0)
        unlabelled, seconds = 0, 0.0
        for name, px in pictures:
            t0 = time.perf_counter()
            faces = analyzer.analyze_pixels(px)["faces"]
            seconds += time.perf_counter() - t0
            for who in {identity(name, f["box"], known) for f in faces}:
                if who in found:
                    found[who] += 1
                else:
                    unlabelled += 1
        boxes = [f["box"] for f in analyzer.analyze_pixels(profile)["faces"]]
        turned = any(b[0] + b[2] / 2 < 0.69 for b in boxes)  # the camera half is x < 0.69
        false_pos = sum(len(analyzer.analyze_pixels(px)["faces"]) for px in faceless.values())
        col = {p: f"{found[p]}/{wanted[p]}" for p in people}
        col["all labelled"] = f"{sum(found.values())}/{sum(wanted.values())}"
        col["unlabelled"] = str(unlabelled)
        col["profile photo"] = f"{len(boxes)} faces, turned {'yes' if turned else 'no'}"
        col[f"false+ ({len(faceless)} faceless)"] = str(false_pos)
        col["s/photo"] = f"{seconds / len(pictures):.3f}"
        columns[detector] = col
    print(f"== faces found per labelled person ({len(pictures)} photos, 1024 px, CPU)")
    rows = list(next(iter(columns.values())))
    print(f"{'':<22}" + "".join(f"{d:>22}" for d in detectors))
    for row in rows:
        print(f"{row:<22}" + "".join(f"{columns[d][row]:>22}" for d in detectors))


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


def bench_labelled(state: Path, orders: int = 20) -> None:
    """Pairwise precision/recall on the labelled real photos, at once and in random orders."""
    import random

    from photovault.analyze.faces import FacesAnalyzer, FaceSettings, build_engine
    from photovault.media.decode import decode_image
    from photovault.people.cluster import pair_agreement, pair_scores
    from photovault.people.store import PeopleStore

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.labelled_faces import identity, labels
    from helpers.labelled_faces import photos as labelled_photos

    cfg = FaceSettings()
    analyzer = FacesAnalyzer(build_engine(cfg, state), cfg)
    t0 = time.perf_counter()
    faces = [
        (p.name, analyzer.analyze_pixels(decode_image(p, cfg.image_side).pixels)["faces"])
        for p in labelled_photos()
    ]
    elapsed = time.perf_counter() - t0
    known = labels()
    found = sum(len(f) for _, f in faces)
    print(
        f"\n== labelled real photos: {len(faces)} photos, {found} faces in {elapsed:.1f} s "
        f"({found / elapsed:.2f} faces/s incl. decode and detection)"
    )
    per_person: dict[str, int] = {}
    for name, found_faces in faces:
        for f in found_faces:
            who = identity(name, f["box"], known)
            per_person[who] = per_person.get(who, 0) + 1
    labelled = {}
    for rows in known.values():
        for person, _x, _y in rows:
            labelled[person] = labelled.get(person, 0) + 1
    print(
        "faces found per labelled person: "
        + ", ".join(f"{p} {per_person.get(p, 0)}/{n}" for p, n in sorted(labelled.items()))
    )

    def run(batches: list[list[int]]) -> tuple[list[str], list[int]]:
        with tempfile.TemporaryDirectory() as tmp:
            store = PeopleStore.for_settings(Path(tmp), cfg)
            for batch in batches:
                for i in batch:
                    store.add_photo_faces(*faces[i])
                store.cluster()
            truth, predicted = [], []
            for name, _ in faces:
                for f in store.photo_faces(name):
                    truth.append(identity(name, f["box"], known))
                    predicted.append(-1 if f["person_id"] is None else f["person_id"])
            store.close()
        return truth, predicted

    truth, reference = run([list(range(len(faces)))])
    p, r = pair_scores(truth, reference)
    print(f"all at once: precision {p:.3f}, recall {r:.3f}, {len(set(reference) - {-1})} people")
    worst = (1.0, 1.0, 1.0)
    rng = random.Random(0)
    for _ in range(orders):
        order = list(range(len(faces)))
        rng.shuffle(order)
        batches, i = [], 0
        while i < len(order):
            size = rng.choice([1, 1, 2, 3, 5, 8])
            batches.append(order[i : i + size])
            i += size
        truth, predicted = run(batches)
        p, r = pair_scores(truth, predicted)
        a = pair_agreement(predicted, reference)
        worst = (min(worst[0], p), min(worst[1], r), min(worst[2], a))
    print(
        f"{orders} random arrival orders and batches: worst precision {worst[0]:.3f}, "
        f"recall {worst[1]:.3f}, agreement with all at once {worst[2]:.3f}"
    )


def synthetic_faces(n: int, seed: int = 0, dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, identity) of n dlib-like faces: people of Zipf-like sizes (the largest
    holds 5% of all faces) and 15% strangers seen once; per-dimension spreads chosen so
    same-person distances sit around 0.35 and different people around 0.9, as measured
    on the labelled photos (norms ~1.4 like dlib's)."""
    rng = np.random.default_rng(seed)
    strangers = int(n * 0.15)
    sizes, left, k = [], n - strangers, 1
    while left > 0:
        size = min(left, max(3, int(n * 0.05 / k**1.1)))
        sizes.append(size)
        left -= size
        k += 1
    base = rng.normal(size=dim)
    base *= 1.25 / np.linalg.norm(base)
    centres = base + rng.normal(scale=0.056, size=(len(sizes) + strangers, dim))
    who = np.concatenate(
        [np.repeat(np.arange(len(sizes)), sizes), len(sizes) + np.arange(strangers)]
    )
    x = centres[who] + rng.normal(scale=0.022, size=(n, dim))
    order = rng.permutation(n)
    return x[order].astype(np.float32), who[order]


def fill_store(store: Any, x: np.ndarray, start: int = 0, per_photo: int = 50) -> list[str]:
    """Store embeddings as photos of `per_photo` faces (boxes on a grid); returns keys."""
    keys = []
    for lo in range(0, len(x), per_photo):
        key = f"synthetic-{start + lo}"
        faces = [
            {
                "box": [(j % 10) / 10, (j // 10) / 10, 0.09, 0.09],
                "score": 1.0,
                "embedding": v.tolist(),
                "model": "Dlib",
            }
            for j, v in enumerate(x[lo : lo + per_photo])
        ]
        store.add_photo_faces(key, faces)
        keys.append(key)
    return keys


def ingest_and_search(store: Any, face: np.ndarray, stop: Any, slowest: dict) -> None:
    """What ingest and vaultctl do during a pass: store a photo's face, list people;
    the slowest of each call is kept in `slowest` (seconds)."""
    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        fill_store(store, face, start=10**9 + i, per_photo=1)
        store.remove_photo(f"synthetic-{10**9 + i}")
        slowest["add"] = max(slowest["add"], time.perf_counter() - t)
        t = time.perf_counter()
        store.people()
        slowest["list"] = max(slowest["list"], time.perf_counter() - t)
        i += 1
        stop.wait(0.05)


def bench_full_pass(sizes: list[int]) -> None:
    import threading

    from photovault.people.cluster import pair_scores
    from photovault.people.store import PeopleStore

    print(
        f"\n== full clustering pass (PeopleStore.cluster), synthetic faces, {os.cpu_count()} cpus"
    )
    print(
        f"{'faces':>7} {'fill_s':>7} {'pass_s':>7} {'again_s':>8} {'people':>7} "
        f"{'P':>6} {'R':>6} {'slowest add_ms':>15} {'slowest list_ms':>16}"
    )
    for n in sizes:
        x, who = synthetic_faces(n)
        extra = int(n * 0.01)
        with tempfile.TemporaryDirectory() as tmp:
            store = PeopleStore(Path(tmp) / "people.sqlite3")
            t0 = time.perf_counter()
            keys = fill_store(store, x[: n - extra])
            fill = time.perf_counter() - t0
            stop = threading.Event()
            slowest = {"add": 0.0, "list": 0.0}
            probe = threading.Thread(target=ingest_and_search, args=(store, x[:1], stop, slowest))
            probe.start()
            first = store.cluster()
            keys += fill_store(store, x[n - extra :], start=n)
            again = store.cluster()
            stop.set()
            probe.join()
            labels = {}
            for key in keys:
                for f in store.photo_faces(key):
                    labels[f["id"]] = -1 if f["person_id"] is None else f["person_id"]
            predicted = [labels[i] for i in sorted(labels)]
            truth = list(who)  # faces were stored in x's order, ids ascending
            p, r = pair_scores(truth, predicted)
            print(
                f"{n:>7} {fill:>7.1f} {first.seconds:>7.1f} {again.seconds:>8.1f} "
                f"{len(store.people()):>7} {p:>6.3f} {r:>6.3f} "
                f"{slowest['add'] * 1000:>15.0f} {slowest['list'] * 1000:>16.0f}"
            )
            store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cnn", action="store_true", help="skip the slow dlib CNN detector")
    parser.add_argument("--state", type=Path, help="state dir (weights copied there)")
    parser.add_argument(
        "--pass-only", action="store_true", help="only the full clustering pass (no models)"
    )
    parser.add_argument(
        "--recall-only", action="store_true", help="only faces found per detector (issue 16)"
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="faces for the full pass, comma-separated"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "daemon"))
    sizes = [int(v) for v in args.sizes.split(",") if v]
    if args.pass_only:
        bench_full_pass(sizes)
        return 0
    state = args.state or Path(tempfile.mkdtemp(prefix="faces-bench-"))
    import dlib

    print(f"dlib {dlib.__version__}, cpus {os.cpu_count()}, state {state}")
    bench_recall(state, args.skip_cnn)
    if args.recall_only:
        return 0
    bench_detectors(state, args.skip_cnn)
    bench_clustering(state)
    bench_labelled(state)
    bench_full_pass(sizes)
    return 0


if __name__ == "__main__":
    code = main()
    rss.report()
    raise SystemExit(code)
