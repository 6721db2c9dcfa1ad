"""CLIP benchmark: image-tower images/s, text-query latency, variant agreement.

    python bench/clip.py --model-dir STATE/models/vit-b-32-laion2b_s34b_b79k
    python bench/clip.py --checkpoint vit-b-32.pt          # export first (open_clip)
    python bench/clip.py                                   # random-weight ViT-B-32

Random weights run at the same speed as real ones, so without a model the
script exports a randomly initialised ViT-B-32 (needs the export extra; about
a minute). A variant missing from the folder is made for the benchmark: int8
by the same MatMul-only dynamic quantization the installer uses (which may
have refused it: see models/export/clip.py quantize_int8), fp16 only with --fp16.

For each variant and batch size (1, 8, 32) it prints:

* ``wrapper``: analyze/clip.py through SessionFactory, preprocessing included
  (what vaultd does per batch of decoded photos);
* ``wrapper run``: the same ManagedModel run on an already preprocessed batch;
* ``bare ort``: a plain onnxruntime session (default options, same thread
  count) on the same tensor. The wrapper should be within 10% of it.

Text queries: p50/p95 of tokenize + encode for one query at a time. fp16 runs
on the CPU only without graph fusion (full fusion crashes onnxruntime on fp16
here, shared/MEASUREMENTS.md), so its figures are for agreement more than
speed. No figure is asserted; this prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import rss  # bench/rss.py, beside this script
from photovault.analyze.clip import Clip
from photovault.models.clip import trim_length
from photovault.models.export.clip import quantize_int8
from photovault.models.preprocess import preprocess
from photovault.models.session import SessionFactory
from photovault.models.store import InstalledModel, Manifest, describe_file, validate_dir
from photovault.models.tokenizer import default_tokenizer

log = logging.getLogger("bench.clip")

QUERIES = (
    "a cat sleeping on a sofa",
    "sunset over the sea",
    "birthday party with balloons",
    "snowy mountain hut",
    "a red car in the rain",
    "grandmother in the garden",
    "fireworks over the city",
    "a plate of pasta",
)


def photos(count: int) -> list[np.ndarray]:
    """scikit-image's colour photos, cycled to `count` (decoded, as the pipeline hands them)."""
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket")
    base = [np.ascontiguousarray(getattr(data, n)()[..., :3]) for n in names]
    return [base[i % len(base)] for i in range(count)]


def timed(fns: list[Callable[[], Any]], min_s: float, min_rounds: int = 3) -> list[float]:
    """Median seconds per call of each fn, run in turns of ~0.5 s blocks so that load
    from other processes on a shared box hits all of them alike.

    Blocks, not single calls in turn: the bare session's threads spin after each
    run (onnxruntime's default) and would steal the cores from whichever call
    came right after it, making the next one look slower than it is.
    """
    for fn in fns:
        fn()  # warm-up: first run allocates and picks kernels
    times: list[list[float]] = [[] for _ in fns]
    started = time.perf_counter()
    while len(times[0]) < min_rounds or time.perf_counter() - started < min_s * len(fns):
        for fn, out in zip(fns, times, strict=True):
            block = time.perf_counter()
            while True:
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
                if t - block >= 0.5:
                    break
    return [statistics.median(t) for t in times]


def bare_session(path: Path, threads: int, fused: bool) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not fused:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class UnfusedFactory(SessionFactory):
    """SessionFactory with basic graph optimisation only (fp16 on the CPU)."""

    def session_options(self, spinning: bool = False) -> Any:
        options = super().session_options(spinning)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        return options


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Manifest]:
    """A model folder with fp32 and int8 (and fp16 if asked) files."""
    if args.model_dir:
        src = Path(args.model_dir)
    else:
        from photovault.models.export import clip as export_clip

        checkpoint = args.checkpoint
        if checkpoint is None:
            import open_clip
            import torch

            torch.manual_seed(0)
            checkpoint = work / "vit-b-32-random.pt"
            torch.save(open_clip.create_model(args.arch).state_dict(), checkpoint)
        src = work / "export"
        variants = ("fp32", "fp16") if args.fp16 else ("fp32",)
        print(f"exporting {args.arch} from {checkpoint} (about a minute) ...", flush=True)
        export_clip.export(src, args.arch, str(checkpoint), variants)
    manifest = validate_dir(src, "clip")
    if "int8" in manifest.variants:
        return src, manifest
    # Make int8 the installer's way, in a scratch copy (the model folder stays as is).
    model_dir = work / "model"
    model_dir.mkdir(exist_ok=True)
    files = []
    for f in manifest.files:
        shutil.copyfile(src / f.path, model_dir / f.path)
        files.append(f)
    for role in ("image", "text"):
        fp32 = model_dir / manifest.file_for(role, "fp32").path
        int8 = model_dir / f"{role}.int8.onnx"
        quantize_int8(fp32, int8)
        files.append(describe_file(int8, role, "int8"))
    print("int8 made for this benchmark (MatMul only, dynamic)", flush=True)
    return model_dir, dataclasses.replace(manifest, files=tuple(files))


def bench_variant(
    model_dir: Path,
    manifest: Manifest,
    variant: str,
    args: argparse.Namespace,
    fp32_ref: dict[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    fused = variant != "fp16"
    factory_cls = SessionFactory if fused else UnfusedFactory
    factory = factory_cls(["CPUExecutionProvider"], args.threads, 1, 600.0)
    runnable = dataclasses.replace(
        manifest, extra={k: v for k, v in manifest.extra.items() if k != "gpu_only_variants"}
    )
    clip = Clip(InstalledModel(model_dir, runnable), variant, factory)
    image_file = model_dir / manifest.file_for("image", variant).path
    text_file = model_dir / manifest.file_for("text", variant).path
    bare_image = bare_session(image_file, args.threads, fused)
    bare_text = bare_session(text_file, args.threads, fused)
    image_input = bare_image.get_inputs()[0].name
    text_input = bare_text.get_inputs()[0].name
    size, mean, std = manifest.input_size, manifest.mean, manifest.std

    print(
        f"\n{variant} ({'full' if fused else 'basic'} graph optimisation, {args.threads} threads)"
    )
    print(f"  {'batch':>5} {'wrapper':>10} {'wrapper run':>12} {'bare ort':>10} {'run/bare':>9}")
    for batch in args.batches:
        pics = photos(batch)
        x = np.stack([preprocess(p, size, mean, std, 1.0) for p in pics])
        medians = timed(
            [
                lambda pics=pics: clip.embed_pixels(pics),
                lambda x=x: clip._image.run({image_input: x}),
                lambda x=x: bare_image.run(None, {image_input: x}),
            ],
            args.min_s,
        )
        rates = [batch / m for m in medians]
        print(
            f"  {batch:>5} {rates[0]:>8.1f}/s {rates[1]:>10.1f}/s {rates[2]:>8.1f}/s "
            f"{rates[1] / rates[2]:>8.2f}x",
            flush=True,
        )

    tokenizer = default_tokenizer()
    context = manifest.extra["context_length"]
    trims = clip._text_trim
    runs: dict[str, Callable[[str], Any]] = {
        "wrapper": lambda q: clip.encode_text([q]),
        f"bare ort, {context} tokens": lambda q: bare_text.run(
            None, {text_input: tokenizer([q], context)}
        ),
    }
    if trims:  # the same work as the wrapper: tokens up to the end token
        runs["bare ort, trimmed"] = lambda q: bare_text.run(
            None,
            {text_input: (ids := tokenizer([q], context))[:, : trim_length(ids, tokenizer.eot)]},
        )
    latencies: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.query_rounds):
        for label, run in runs.items():  # a block of queries each, in turns
            for q in QUERIES:
                t = time.perf_counter()
                run(q)
                latencies[label].append(time.perf_counter() - t)
    print(f"  text tower takes {'any length (trimmed queries)' if trims else f'{context} tokens'}")
    for label, values in latencies.items():
        ms = np.asarray(values[len(QUERIES) :] or values) * 1000  # first round warms up
        print(
            f"  text query ({label}, tokenize + encode): p50 {np.percentile(ms, 50):.1f} ms, "
            f"p95 {np.percentile(ms, 95):.1f} ms"
        )

    out = {
        "images": clip.embed_pixels(photos(4)),
        "texts": clip.encode_text(list(QUERIES)),
    }
    if fp32_ref is not None:
        print(
            f"  cosine to fp32: photos min {cosines(out['images'], fp32_ref['images']).min():.5f}, "
            f"texts min {cosines(out['texts'], fp32_ref['texts']).min():.5f}"
        )
    clip.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="an installed or exported CLIP model folder")
    parser.add_argument("--checkpoint", type=Path, help="open_clip checkpoint to export first")
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--fp16", action="store_true", help="also export/time the fp16 variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--min-s", type=float, default=3.0, help="seconds per timing")
    parser.add_argument("--query-rounds", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-clip-") as tmp:
        model_dir, manifest = prepare(args, Path(tmp))
        print(
            f"model {manifest.name} ({manifest.architecture}, {manifest.input_size} px, "
            f"{manifest.embedding_dim}-d), onnxruntime {ort.__version__}"
        )
        variants = [v for v in ("fp32", "int8", "fp16") if v in manifest.variants]
        if not args.fp16:
            variants = [v for v in variants if v != "fp16"]
        fp32 = None
        for variant in variants:
            result = bench_variant(model_dir, manifest, variant, args, fp32)
            fp32 = fp32 if fp32 is not None else result


if __name__ == "__main__":
    main()
    rss.report()
