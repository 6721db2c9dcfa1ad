"""Ingest benchmark: end-to-end images/s through a real vaultd vs decode-only.

Generates camera-like 12-MP JPEGs, measures the decode-only rate of those
files at the analyzers' working size with the same number of processes, then
runs a real vaultd (scan, catalog, hashing, exiftool, decode pool, the enabled
analyzers, catalog commit) over the same files and prints both rates, their
ratio, and vaultd's peak RSS (main process and decode workers). Target: end
to end >= 85% of decode-only on a 2-core machine.

    python bench/ingest.py [--count 120] [--workers 2] [--analyzers metadata]
    python bench/ingest.py --clip-dir MODEL_DIR [--variant int8]

With ``--clip-dir`` (an exported or installed CLIP model folder) vaultd also
runs the ``clip`` analyzer on that model, and the baseline that matters is the
image tower's bare throughput: a plain onnxruntime session (2 threads) on
already preprocessed tensors at the same batch size, nothing else running.
Target (issue #3): end to end >= 90% of it, i.e. decoding overlaps inference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from decode import decode_only_rate, make_camera_jpegs  # noqa: E402
from photovault.query.client import Client, ClientError  # noqa: E402


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(main process VmHWM, sum of children's VmHWM) in MiB, read before they exit."""

    def hwm(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            children.extend(int(k) for k in kids)
    except OSError:
        pass
    return hwm(pid), sum(hwm(c) for c in children)


def bare_tower_rate(model_dir: Path, variant: str, batch: int, threads: int = 2) -> float:
    """Images/s of the bare image tower on preprocessed tensors (no decoding),
    timed the way bench/clip.py times its bare sessions."""
    import numpy as np

    from clip import bare_session, timed  # bench/clip.py
    from photovault.models.store import validate_dir

    manifest = validate_dir(model_dir, "clip")
    session = bare_session(model_dir / manifest.file_for("image", variant).path, threads, True)
    name = session.get_inputs()[0].name
    side = manifest.input_size
    x = np.random.default_rng(0).standard_normal((batch, 3, side, side)).astype(np.float32)
    (seconds,) = timed([lambda: session.run(None, {name: x})], min_s=10.0)
    return batch / seconds


def run_vaultd(
    files: list[Path],
    workers: int,
    analyzers: list[str],
    batch: int,
    clip: tuple[Path, str] | None = None,
    *,
    models: Path | None = None,
    decode_seconds: bool = False,
) -> dict:
    """Index `files` with a real vaultd; with `models`, that model store is copied
    in; with `decode_seconds`, the result's "decode" is the decode stage's total
    seconds from vaultd's own metrics (served on a free loopback port)."""
    base = Path(tempfile.mkdtemp(prefix="pv-bench-"))
    share = base / "photos"
    share.mkdir()
    if models is not None:
        shutil.copytree(models, base / "state" / "models")
    listen = f"127.0.0.1:{free_port()}" if decode_seconds else ""
    models_cfg = ""
    if clip is not None:
        from photovault.models.install import import_model

        manifest = import_model(base / "state" / "models", "clip", clip[0])
        models_cfg = f'[models]\nclip = "{manifest.name}"\nclip_variant = "{clip[1]}"\n'
        analyzers = [*analyzers, "clip"] if "clip" not in analyzers else analyzers
    for f in files:
        shutil.copy(f, share / f.name)
        old = time.time() - 3600
        os.utime(share / f.name, (old, old))
    cfg = base / "vaultd.toml"
    cfg.write_text(
        f'state_dir = "{base / "state"}"\nlog_level = "WARNING"\n'
        f'[server]\nsocket = "{base / "s.sock"}"\n[metrics]\nlisten = "{listen}"\n'
        f'[[shares]]\nname = "bench"\npath = "{share}"\n'
        f"[ingest]\nsettle_seconds = 0.5\n"
        f"[throttle]\nbatch_size = {batch}\ndecode_workers = {workers}\n"
        f"[analyzers]\nenabled = {json.dumps(analyzers)}\n" + models_cfg
    )
    t0 = time.monotonic()
    log = (base / "vaultd.log").open("wb")  # lives as long as vaultd
    proc = subprocess.Popen(
        [sys.executable, "-m", "photovault.daemon_main", "--config", str(cfg)], stderr=log
    )
    client = Client(base / "s.sock")
    first_done = None
    rss = (0.0, 0.0)
    try:
        while True:
            time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit(f"vaultd died: {(base / 'vaultd.log').read_text()[-2000:]}")
            try:
                st = client.call("status")
            except ClientError:
                continue
            c = st["shares"][0]["counts"]
            rss = tuple(max(a, b) for a, b in zip(rss, peak_rss_mib(proc.pid), strict=True))
            if first_done is None and c["done"]:
                first_done = (time.monotonic(), c["done"])
            if c["done"] + c["quarantined"] >= len(files) and not st["queue_depth"]:
                break
        end = time.monotonic()
        elapsed = end - t0
        decode = stage_seconds(f"http://{listen}/metrics", "decode") if listen else None
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(base, ignore_errors=True)
    assert first_done is not None
    steady = (len(files) - first_done[1]) / max(end - first_done[0], 1e-6)
    return {
        "elapsed": elapsed,
        "rate": steady,
        "cold_rate": len(files) / elapsed,
        "rss_main": rss[0],
        "rss_workers": rss[1],
        "quarantined": c["quarantined"],
        "decode": decode,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stage_seconds(metrics_url: str, stage: str) -> float:
    """Total seconds vaultd spent in one pipeline stage, from its Prometheus metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    m = re.search(rf'photovault_stage_duration_seconds_sum\{{stage="{stage}"\}} (\S+)', text)
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--side", type=int, default=224, help="analyzers' working size")
    ap.add_argument("--analyzers", default="metadata")
    ap.add_argument("--dir", help="reuse generated JPEGs in this folder")
    ap.add_argument("--clip-dir", type=Path, help="also run clip with this model folder")
    ap.add_argument("--variant", default="fp32", help="CLIP variant with --clip-dir")
    args = ap.parse_args()

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="pv-jpegs-"))
    files = sorted(folder.glob("*.jpg"))
    if len(files) < args.count:
        print(f"generating {args.count} 12-MP JPEGs in {folder} ...", flush=True)
        files = make_camera_jpegs(folder, args.count)
    files = files[: args.count]
    mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
    print(f"{len(files)} files, {mb:.1f} MB each on average")

    decode_rate = decode_only_rate(files, args.side, args.workers)
    print(
        f"decode-only ({args.workers} processes, {args.side} px): {decode_rate:6.1f} img/s",
        flush=True,
    )
    clip = (args.clip_dir, args.variant) if args.clip_dir else None
    tower_rate = None
    if clip is not None:
        tower_rate = bare_tower_rate(args.clip_dir, args.variant, args.batch)
        print(
            f"bare CLIP image tower ({args.variant}, batch {args.batch}, 2 threads, "
            f"preprocessed tensors): {tower_rate:6.1f} img/s",
            flush=True,
        )
    res = run_vaultd(files, args.workers, args.analyzers.split(","), args.batch, clip)
    label = args.analyzers + (f",clip {args.variant}" if clip else "")
    print(
        f"vaultd end to end ({label}): {res['rate']:6.1f} img/s steady "
        f"({res['cold_rate']:.1f} img/s over {res['elapsed']:.1f} s including start-up)"
    )
    print(
        f"ratio end-to-end / decode-only: {res['rate'] / decode_rate * 100:5.1f}% (target >= 85%)"
    )
    if tower_rate is not None:
        print(
            f"ratio end-to-end / bare image tower: {res['rate'] / tower_rate * 100:5.1f}% "
            "(target >= 90%)"
        )
    print(
        f"vaultd peak RSS: main {res['rss_main']:.0f} MiB, decode workers "
        f"{res['rss_workers']:.0f} MiB in total"
    )
    if res["quarantined"]:
        print(f"warning: {res['quarantined']} files quarantined")


if __name__ == "__main__":
    main()
