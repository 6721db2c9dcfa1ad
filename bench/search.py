"""Search index benchmark: write rate, search latency and recall@20 against exact search.

    .venv/bin/python bench/search.py                 # 10k and 100k photos
    .venv/bin/python bench/search.py --full          # ... and 1M
    .venv/bin/python bench/search.py --sizes 5000 --queries 20 --json out.json

Vectors are synthetic but clustered like CLIP embeddings (photos of the same
scene sit together), with queries drawn near cluster centres the way a text
query lands near a concept; ground truth is exact cosine in numpy. Filters use
the same columns the socket server sends (camera ~10%, a date range, a tag).

`time_search` is the core timed call; the query service's benchmark wraps it
with socket and text-encoding time.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

import rss  # bench/rss.py, beside this script
from photovault.index import Filters, IndexSettings, PhotoIndex, PhotoRecord

log = logging.getLogger("bench.search")

CAMERAS = [
    "Canon EOS R5",
    "Nikon Z6",
    "Sony A7 III",
    "Apple iPhone 12",
    "Google Pixel 7",
    "Fujifilm X-T4",
    "Olympus E-M1",
    "Panasonic GH5",
    "Samsung S21",
    "Leica Q2",
]
TAGS = [
    "Animals|Dog",
    "Animals|Cat",
    "Places|Beach",
    "Places|Mountain",
    "Food",
    "People",
    "Vehicles|Car",
    "Plants|Flower",
    "Night",
    "Architecture|Church",
]
START = datetime(2015, 1, 1)
FILTERS: dict[str, Filters] = {
    "none": Filters(),
    "camera ~10%": Filters(camera="canon"),
    "date range ~20%": Filters(after=date(2020, 1, 1), before=date(2022, 1, 1)),
    "tag + camera ~1%": Filters(tags=["dog"], camera="nikon"),
}


def clustered_vectors(
    rng: np.random.Generator, n: int, dim: int, clusters: int, spread: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around `clusters` random centres; returns (vectors, centres)."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 50_000
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        which = rng.integers(0, clusters, hi - lo)
        noise = rng.standard_normal((hi - lo, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        v = centres[which] + noise
        out[lo:hi] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, centres


def queries_near(
    rng: np.random.Generator, centres: np.ndarray, n: int, spread: float = 1.0
) -> np.ndarray:
    pick = centres[rng.integers(0, len(centres), n)]
    q = pick + rng.standard_normal(pick.shape).astype(np.float32) * (
        spread / np.sqrt(centres.shape[1])
    )
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def attributes(n: int) -> dict[str, np.ndarray]:
    """Deterministic metadata so filter ground truth is a numpy mask."""
    i = np.arange(n)
    return {
        "camera": i % len(CAMERAS),
        "day": (i * 7919) % (365 * 10),  # spread over 2015..2024
        "tag": (i // 10) % len(TAGS),
    }


def filter_mask(name: str, attrs: dict[str, np.ndarray]) -> np.ndarray:
    n = len(attrs["camera"])
    if name == "none":
        return np.ones(n, dtype=bool)
    if name == "camera ~10%":
        return attrs["camera"] == 0
    if name == "date range ~20%":
        days = np.array([(START + timedelta(days=int(d))).date() for d in attrs["day"]])
        return (days >= date(2020, 1, 1)) & (days < date(2022, 1, 1))
    if name == "tag + camera ~1%":
        return (attrs["tag"] == 0) & (attrs["camera"] == 1)
    raise KeyError(name)


def records(
    vectors: np.ndarray, attrs: dict[str, np.ndarray], lo: int, hi: int
) -> Iterator[PhotoRecord]:
    for i in range(lo, hi):
        taken = START + timedelta(days=int(attrs["day"][i]), seconds=i % 86_400)
        yield PhotoRecord(
            id=i,
            share="bench",
            path=f"{taken.year}/{i % 500:03d}/IMG_{i:07d}.jpg",
            abs_path=f"/srv/bench/{taken.year}/{i % 500:03d}/IMG_{i:07d}.jpg",
            sha256=f"{i:064x}",
            size=3_000_000 + i,
            mtime_ns=i,
            taken_at=taken.isoformat() + "+01:00",
            lat=40.0 + (i % 1000) / 100.0,
            lon=-3.0 + (i % 700) / 100.0,
            camera=CAMERAS[int(attrs["camera"][i])],
            width=4000,
            height=3000,
            tags=[{"tag": TAGS[int(attrs["tag"][i])], "confidence": 0.7, "source": "tagger"}],
            dhash=f"{(i * 2654435761) % (1 << 64):016x}",
            vector=vectors[i],
        )


def load(
    idx: PhotoIndex, vectors: np.ndarray, attrs: dict[str, np.ndarray], batch: int = 64
) -> float:
    """Feed rows the way the pipeline does (batches of `batch`, a tick per batch);
    returns photos/s of the index calls (building the records is the pipeline's
    cost and is not timed), flushes and scheduled compaction included."""
    n = len(vectors)
    spent = 0.0
    for lo in range(0, n, batch):
        recs = list(records(vectors, attrs, lo, min(lo + batch, n)))
        t0 = time.perf_counter()
        idx.upsert(recs)
        idx.tick()
        spent += time.perf_counter() - t0
    t0 = time.perf_counter()
    idx.flush()
    spent += time.perf_counter() - t0
    return n / spent


def time_search(
    idx: PhotoIndex,
    queries: np.ndarray | list[str | None],
    filters: Filters,
    limit: int = 20,
    *,
    text: bool = False,
) -> dict[str, Any]:
    """The core timed call: one `search` per query; latency percentiles in ms."""
    lat: list[float] = []
    results: list[list[int]] = []
    for q in queries:
        t0 = time.perf_counter()
        hits = idx.search(None, q, filters, limit) if text else idx.search(q, None, filters, limit)
        lat.append((time.perf_counter() - t0) * 1000)
        results.append([h.id for h in hits])
    arr = np.array(lat)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p95_ms": round(float(np.percentile(arr, 95)), 2),
        "ids": results,
    }


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray, k: int = 20
) -> list[set[int]]:
    out: list[set[int]] = []
    for q in queries:
        s = vectors @ q
        s[~mask] = -np.inf
        top = np.argpartition(-s, min(k, len(s) - 1))[:k]
        out.append({int(i) for i in top if np.isfinite(s[i])})
    return out


def run_size(
    n: int,
    *,
    dim: int,
    n_queries: int,
    workdir: Path,
    settings: IndexSettings,
    report: Callable[[str], None],
) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    vectors, centres = clustered_vectors(rng, n, dim, clusters=max(10, n // 100))
    attrs = attributes(n)
    queries = queries_near(rng, centres, n_queries)
    path = workdir / f"index-{n}"
    shutil.rmtree(path, ignore_errors=True)
    threshold = settings.ann_threshold
    # Load with the ANN build held back so the write rate is the pipeline's.
    idx = PhotoIndex(path, IndexSettings(**{**settings.__dict__, "ann_threshold": 1 << 62}))
    rate = load(idx, vectors, attrs)
    report(f"{n:>9,} photos: write {rate:,.0f} photos/s")
    idx.settings.ann_threshold = threshold
    t0 = time.perf_counter()
    did = idx.maintain()
    build_s = time.perf_counter() - t0
    report(f"{n:>9,} photos: maintain {build_s:.1f} s ({did}), ann={idx.has_ann}")
    t0 = time.perf_counter()
    idx.load_memory()  # as vaultd does at start; it serves unfiltered searches from 164k
    report(
        f"{n:>9,} photos: in-memory index loaded in {time.perf_counter() - t0:.1f} s: "
        f"{idx.memory_status()}"
    )
    out: dict[str, Any] = {
        "photos": n,
        "write_photos_per_s": round(rate),
        "maintain_s": round(build_s, 1),
        "ann": idx.has_ann,
        "search": {},
        "memory_index": idx.memory_status(),
    }
    idx.search(queries[0], None, Filters(), 20)  # warm caches
    for name, flt in FILTERS.items():
        timed = time_search(idx, queries, flt)
        truth = exact_top(vectors, queries, filter_mask(name, attrs))
        rec = np.mean(
            [len(set(got) & t) / max(len(t), 1) for got, t in zip(timed["ids"], truth, strict=True)]
        )
        out["search"][name] = {
            "p50_ms": timed["p50_ms"],
            "p95_ms": timed["p95_ms"],
            "recall_at_20": round(float(rec), 3),
        }
        report(
            f"{n:>9,} photos: vector, filter {name:<17} p50 {timed['p50_ms']:7.1f} ms  "
            f"p95 {timed['p95_ms']:7.1f} ms  recall@20 {rec:.3f}"
        )
    words = ["dog", "beach", "church", "flower", "night"]
    timed = time_search(
        idx, [words[i % len(words)] for i in range(n_queries)], Filters(), text=True
    )
    out["search"]["text"] = {"p50_ms": timed["p50_ms"], "p95_ms": timed["p95_ms"]}
    report(
        f"{n:>9,} photos: text search               p50 {timed['p50_ms']:7.1f} ms  "
        f"p95 {timed['p95_ms']:7.1f} ms"
    )
    timed = time_search(
        idx, [None] * max(5, n_queries // 4), FILTERS["tag + camera ~1%"], text=True
    )
    out["search"]["filters only ~1%"] = {"p50_ms": timed["p50_ms"], "p95_ms": timed["p95_ms"]}
    report(
        f"{n:>9,} photos: filters only (~1%)        p50 {timed['p50_ms']:7.1f} ms  "
        f"p95 {timed['p95_ms']:7.1f} ms"
    )
    lat = []
    for i in range(max(5, n_queries // 4)):
        t0 = time.perf_counter()
        idx.similar(int(i * (n // 7)) % n, 20)
        lat.append((time.perf_counter() - t0) * 1000)
    out["search"]["similar"] = {
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
    }
    report(
        f"{n:>9,} photos: similar(photo)             p50 {np.percentile(lat, 50):7.1f} ms  "
        f"p95 {np.percentile(lat, 95):7.1f} ms"
    )
    idx.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--full", action="store_true", help="also 1M photos")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--ann-threshold", type=int, default=IndexSettings.ann_threshold)
    ap.add_argument("--nprobes", type=int, default=IndexSettings.nprobes)
    ap.add_argument("--refine-factor", type=int, default=IndexSettings.refine_factor)
    ap.add_argument("--workdir", type=Path, default=None, help="keep indexes here")
    ap.add_argument("--json", type=Path, default=None, help="write figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = list(args.sizes) + ([1_000_000] if args.full else [])
    settings = IndexSettings(
        vector_dim=args.dim,
        ann_threshold=args.ann_threshold,
        nprobes=args.nprobes,
        refine_factor=args.refine_factor,
    )
    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="pv-bench-search-")
        workdir = Path(tmp)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in sizes:
            results.append(
                run_size(
                    n,
                    dim=args.dim,
                    n_queries=args.queries,
                    workdir=workdir,
                    settings=settings,
                    report=lambda s: print(s, flush=True),
                )
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    code = main()
    rss.report()
    raise SystemExit(code)
