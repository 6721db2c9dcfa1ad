"""Search latency as a user sees it: `vaultctl search` through vaultd's Unix socket,
CLIP text encoding included, over an index of N synthetic photos.

    .venv/bin/python bench/search_socket.py --sizes 10000 100000       # random ViT-B-32
    .venv/bin/python bench/search_socket.py --clip-dir STORE/MODEL     # an installed model

Without --clip-dir a randomly initialised ViT-B-32 (real architecture, so real speed)
is exported once through `vaultctl models install clip ViT-B-32 --pretrained FILE`
(torch and open_clip needed, ~90 s, ~2.6 GB peak). The index is filled with clustered
synthetic vectors (bench/search.py), its ANN index built, then a real vaultd serves
the queries. Prints p50/p95 of: text encoding alone (`embed text`), search with
text, search with text and a filter, and vaultd's peak RSS. Target (issue #5):
p95 <= 50 ms at 1M photos with the fp32 text tower.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

import rss  # bench/rss.py, beside this script
from photovault.index import Filters, IndexSettings, PhotoIndex
from photovault.models.install import import_model
from photovault.query.client import Client
from search import START, attributes, clustered_vectors, exact_top, load, queries_near

QUERIES = [
    "a dog on the beach",
    "birthday cake with candles",
    "snowy mountains at sunset",
    "grandma in the kitchen",
    "a red umbrella in the rain",
    "receipt from the pharmacy",
    "kids playing football",
    "the eiffel tower at night",
    "a cat asleep on a sofa",
    "whiteboard with notes",
]


def random_vit(workdir: Path) -> Path:
    """Export a randomly initialised ViT-B-32 (fp32 and int8) into a model store."""
    import open_clip
    import torch

    from photovault.models.install import install

    ckpt = workdir / "vit-b-32-random.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), ckpt)
    store = workdir / "store"
    manifest = install(
        store, "clip", "ViT-B-32", {"pretrained": str(ckpt), "variants": "fp32,int8"}
    )
    ckpt.unlink()
    return store / manifest.name


def percentiles(ms: list[float]) -> str:
    return f"p50 {np.percentile(ms, 50):6.1f} ms  p95 {np.percentile(ms, 95):6.1f} ms"


def timed(client: Client, op: str, n: int, **args: object) -> list[float]:
    out = []
    for i in range(n):
        q = QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}")
        extra = dict(args)
        if op == "search":
            extra["text"] = q
        else:
            extra.update({"kind": "text", "text": q})
        t0 = time.perf_counter()
        client.call(op, **extra)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_gib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**30


def build(n: int, model_dir: Path, workdir: Path) -> tuple[Path, str]:
    """A state dir with the model imported and N synthetic photos indexed (ANN built)."""
    base = workdir / f"vault-{n}"
    shutil.rmtree(base, ignore_errors=True)
    (base / "state").mkdir(parents=True)
    manifest = import_model(base / "state" / "models", "clip", model_dir)
    dim = int(manifest.embedding_dim or 512)
    rng = np.random.default_rng(7)
    vectors, centres = clustered_vectors(rng, n, dim, clusters=max(10, n // 2000))
    attrs = attributes(n)
    idx = PhotoIndex(base / "state" / "index", IndexSettings(vector_dim=dim, face_dim=128))
    t0 = time.perf_counter()
    rate = load(idx, vectors, attrs, batch=4096)
    t1 = time.perf_counter()
    idx.maintain()
    print(
        f"{n:>9,} photos: indexed at {rate:,.0f} photos/s; indexes (ANN, scalar, FTS) built "
        f"in {time.perf_counter() - t1:.0f} s; total {time.perf_counter() - t0:.0f} s; "
        f"on disk {disk_gib(base / 'state'):.1f} GiB",
        flush=True,
    )
    t2 = time.perf_counter()
    idx.load_memory()  # as vaultd does at start: unfiltered searches use it
    print(
        f"{'':>9}  in-memory vector index loaded in {time.perf_counter() - t2:.1f} s: "
        f"{idx.memory_status()}",
        flush=True,
    )
    # Recall of what vaultd will serve, against exact search in numpy, with and
    # without the filter the timed queries use (Canon, taken 2020 or later).
    queries = queries_near(rng, centres, 20)
    canon_2020 = (attrs["camera"] == 0) & (attrs["day"] >= (date(2020, 1, 1) - START.date()).days)
    for label, filters, keep in (
        ("no filter", Filters(), np.ones(n, dtype=bool)),
        ("camera + after", Filters(camera="canon", after=date(2020, 1, 1)), canon_2020),
    ):
        truth = exact_top(vectors, queries, keep)
        found = [
            len({h.id for h in idx.search(q, None, filters, 20)} & t) / 20
            for q, t in zip(queries, truth, strict=True)
        ]
        print(f"{'':>9}  recall@20 vs exact, {label}: {np.mean(found):.3f}", flush=True)
    idx.close()
    del vectors
    (base / "empty").mkdir()
    return base, manifest.name


def serve(base: Path, model: str, n_queries: int, variant: str) -> None:
    """Start vaultd on the prepared state dir and time queries through its socket."""
    cfg = base / f"vaultd-{variant}.toml"
    cfg.write_text(
        f'state_dir = "{base / "state"}"\nlog_level = "WARNING"\n'
        f'[server]\nsocket = "{base / "s.sock"}"\n[metrics]\nlisten = ""\n'
        f'[[shares]]\nname = "bench"\npath = "{base / "empty"}"\n'
        '[analyzers]\nenabled = ["clip"]\n'
        f'[models]\nclip = "{model}"\nclip_variant = "{variant}"\n'
    )
    log = (base / "vaultd.log").open("wb")  # lives as long as vaultd
    proc = subprocess.Popen(
        [sys.executable, "-m", "photovault.daemon_main", "--config", str(cfg)], stderr=log
    )
    client = Client(base / "s.sock", timeout=60)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client.call("ping")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit((base / "vaultd.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        t0 = time.monotonic()
        while True:  # vaultd loads its in-memory vector index in the background
            mem = client.call("status").get("memory_index") or {}
            if mem.get("state") in ("ready", "failed", "off") or time.monotonic() - t0 > 600:
                break
            time.sleep(0.5)
        print(
            f"{'':>9}  vaultd's in-memory index {mem.get('state')} after "
            f"{time.monotonic() - t0:.0f} s ({mem.get('memory_mib')} MiB)",
            flush=True,
        )
        timed(client, "search", 5)  # warm: model load, caches
        active = client.call("status")["analyzers"]["active"]
        variant = next((a.get("variant") for a in active if a["name"] == "clip"), variant)
        enc = timed(client, "embed", n_queries)
        plain = timed(client, "search", n_queries, limit=20)
        filt = timed(
            client,
            "search",
            n_queries,
            limit=20,
            filters={"camera": "canon", "after": "2020-01-01"},
        )
        print(f"{'':>9}  text encode only ({variant}): {percentiles(enc)}")
        print(f"{'':>9}  search, text only:          {percentiles(plain)}")
        print(f"{'':>9}  search, text + 2 filters:   {percentiles(filt)}")
        print(f"{'':>9}  vaultd peak RSS: {peak_rss(proc.pid):.0f} MiB", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--full", action="store_true", help="also 1M photos")
    ap.add_argument("--clip-dir", type=Path, help="an exported CLIP model folder")
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--variants", default="fp32,int8", help="CLIP variants to measure")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pv-bench-socket-"))
    try:
        model_dir = args.clip_dir or random_vit(workdir)
        for n in [*args.sizes, *([1_000_000] if args.full else [])]:
            base, model = build(n, model_dir, workdir)
            for variant in args.variants.split(","):
                serve(base, model, args.queries, variant)
            shutil.rmtree(base, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"note": "compare ratios within one run; this machine is noisy"}))
    return 0


if __name__ == "__main__":
    code = main()
    rss.report()
    raise SystemExit(code)
