"""How models run: the one place that imports onnxruntime.

Analyzers describe *what* runs (a model file, its pre- and post-processing);
this module decides *how*: execution providers, thread counts, memory arena,
thread spinning, and when an idle model is dropped from memory. Keeping these
choices here means a GPU build, a thread budget or an onnxruntime upgrade is a
change in one file, and tests can inject a factory that points elsewhere.

Choices and why:

* The CPU memory arena is off: the arena keeps the peak allocation of the
  largest batch for the life of the session, which for a daemon that sits idle
  most of the day is memory held for nothing.
* ``session.intra_op.allow_spinning = 0``: onnxruntime's worker threads
  otherwise busy-wait after each run, which measured ~2x slower decoding in the
  same process (see shared/MEASUREMENTS.md). Interactive models (the CLIP text
  tower answering a search) are the exception: a query is a few hundred tiny
  operators, each of which must wake a sleeping thread, and spinning made the
  encode alone 25-35% faster here (int8 p50 12-14 ms -> 9-10 ms). The CLIP
  text tower no longer asks for it, though: the index search that follows
  each encode ran 3x slower beside the spinning threads (clip.py).
* Providers are filtered to those this onnxruntime build has, so one config
  (``["CUDAExecutionProvider", "CPUExecutionProvider"]``) works on both kinds
  of machine; the fall-back is logged once per process, not once per model.
* Models load lazily and are unloaded after an idle TTL (``reap()``), because
  a photo library is analysed in bursts and a loaded CLIP model costs
  hundreds of MB.
* A failed load is retried once (a half-written file being replaced, a
  transient CUDA out-of-memory) and then fails loudly naming the file.
* Large lookup tables (a CLIP text tower's 101 MB token embedding) are mapped
  from the model file instead of copied into the heap (``onnxfile.py``): a
  query reads a few rows of it, so the text tower kept warm for searches holds
  ~50 MB instead of ~150 MB. CPU sessions only.
* Freed memory is handed back to the OS (``release_memory``, glibc's
  ``malloc_trim``) after every unload and load. Without it an unloaded
  model's hundreds of MB stayed in vaultd's heap: glibc returns only the top
  of the heap by itself, and onnxruntime frees a model's weights as many
  blocks below smaller live ones (bench/README.md, "Memory at rest").
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from photovault.memory import release_memory
from photovault.models.onnxfile import lookup_tables

log = logging.getLogger(__name__)

#: Gather tables from this size on are mapped from the model file (CLIP's token
#: embedding: 101 MB; everything else we run has none this large).
MAP_TABLES_FROM = 16 << 20

DEFAULT_PROVIDERS: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"

# Providers we already warned about, so the warning appears once per process.
_warned_unavailable: set[str] = set()
_warn_lock = threading.Lock()


class ModelLoadError(RuntimeError):
    """A model file could not be loaded, even after one retry."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot load model {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and element type of one model input or output.

    Symbolic dimensions (a dynamic batch axis) are reported as ``None``.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # onnxruntime's spelling, e.g. "tensor(float)"


@dataclass(frozen=True)
class ModelSignature:
    """What a model file takes and gives; the model store validates against it."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def available_providers() -> list[str]:
    """Execution providers compiled into the installed onnxruntime wheel."""
    return list(ort.get_available_providers())


def _specs(args: Sequence[Any]) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(
            name=a.name,
            shape=tuple(d if isinstance(d, int) else None for d in a.shape),
            dtype=a.type,
        )
        for a in args
    )


def signature_of(session: Any) -> ModelSignature:
    """Inputs and outputs of a loaded session."""
    return ModelSignature(
        inputs=_specs(session.get_inputs()), outputs=_specs(session.get_outputs())
    )


def inspect_model(path: Path | str) -> ModelSignature:
    """Load a model on the CPU just to read its signature.

    Used by the model store to refuse files that do not parse or do not match
    their manifest; it raises ModelLoadError naming the file.
    """
    path = Path(path)
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Validation only needs the graph, not an optimised one.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=[CPU_PROVIDER])
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        raise ModelLoadError(path, _short(exc)) from exc
    signature = signature_of(session)
    del session
    release_memory()  # the model store checks every file at start: hundreds of MB
    return signature


def model_metadata(path: Path | str) -> dict[str, str]:
    """A model file's custom metadata (PP-OCR recognizers carry their charset there)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=[CPU_PROVIDER])
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        raise ModelLoadError(path, _short(exc)) from exc
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    del session
    release_memory()
    return metadata


def quantize_dynamic_int8(
    src: Path | str,
    dst: Path | str,
    op_types: Sequence[str],
    per_channel: bool = False,
    reduce_range: bool = False,
) -> None:
    """Write an int8 (dynamic, weights-only) copy of an fp32 model.

    Lives here so that onnxruntime stays imported from one module; used at
    install/export time only. ``op_types`` limits which operators are
    quantized: on CPU, quantizing MatMul/Gemm pays off, convolutions often
    cost accuracy or speed (see shared/MEASUREMENTS.md). ``reduce_range`` (7-bit
    weights) avoids the int16 accumulator overflow of CPUs without VNNI: on an
    AVX2-only EPYC plain int8 gave CLIP cosine 0.982 to fp32, reduce_range 0.9996.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        op_types_to_quantize=list(op_types),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        reduce_range=reduce_range,
    )


def _provider(session: Any) -> str | None:
    """A session's execution provider; the CPU for a model loaded by a `loader`."""
    if session is None:
        return None
    get = getattr(session, "get_providers", None)
    return str(get()[0]) if get is not None else CPU_PROVIDER


def _short(exc: BaseException) -> str:
    """First line of an onnxruntime message; the rest is a C++ stack."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


class SessionFactory:
    """Creates onnxruntime sessions with the daemon's provider and thread policy.

    One factory is built by the app from the config and injected into every
    analyzer through the AnalyzerContext; analyzers ask it for a
    ManagedModel and never see onnxruntime options.
    """

    def __init__(
        self,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        intra_threads: int = 2,
        inter_threads: int = 1,
        idle_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        on_load: Callable[[str, float, str | None], None] | None = None,
        release: Callable[[], object] = release_memory,
        map_tables: int | None = MAP_TABLES_FROM,
    ) -> None:
        """`on_load(name, seconds, error)` is called after every model load attempt
        that finished (error None) or finally failed; the daemon feeds metrics with it.
        `release()` hands freed memory back to the OS after loads and unloads;
        `map_tables`: map lookup tables of at least this many bytes from the file
        instead of loading them (see the module docstring); None: never."""
        if intra_threads < 0 or inter_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 lets onnxruntime choose)")
        self.requested_providers = list(providers)
        self.intra_threads = intra_threads
        self.inter_threads = inter_threads
        self.idle_ttl_s = idle_ttl_s
        self.clock = clock
        self.on_load = on_load
        self.release = release
        self.map_tables = map_tables
        self.providers = self._filter_providers(self.requested_providers)
        self._models: weakref.WeakSet[ManagedModel] = weakref.WeakSet()
        self._lock = threading.Lock()

    @staticmethod
    def _filter_providers(requested: Sequence[str]) -> list[str]:
        available = set(available_providers())
        chosen = [p for p in requested if p in available]
        missing = [p for p in requested if p not in available]
        with _warn_lock:
            fresh = [p for p in missing if p not in _warned_unavailable]
            _warned_unavailable.update(fresh)
        if fresh:
            log.warning(
                "execution provider(s) %s requested but not available in this onnxruntime "
                "build (available: %s); falling back to %s",
                ", ".join(fresh),
                ", ".join(sorted(available)),
                ", ".join(chosen) or CPU_PROVIDER,
            )
        if CPU_PROVIDER not in chosen:
            # Always keep the CPU as the last resort: onnxruntime assigns nodes a
            # GPU provider cannot run to the CPU, and a missing GPU must not
            # stop the daemon.
            chosen.append(CPU_PROVIDER)
        return chosen

    def session_options(self, spinning: bool = False) -> Any:
        """The onnxruntime SessionOptions every session gets (see module docstring);
        ``spinning`` lets the worker threads busy-wait (interactive models only)."""
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False
        options.intra_op_num_threads = self.intra_threads
        options.inter_op_num_threads = self.inter_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        spin = "1" if spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        return options

    def create(self, path: Path | str, spinning: bool = False) -> Any:
        """Create an InferenceSession for `path` (raises onnxruntime's own errors)."""
        options = self.session_options(spinning)
        pins = self._mapped_tables(path, options)
        session = ort.InferenceSession(str(path), sess_options=options, providers=self.providers)
        if pins:
            # onnxruntime reads the mapped tables without owning them: they live as
            # long as the session (its attributes are dropped after its native part).
            session.photovault_mapped = pins
        return session

    def _mapped_tables(self, path: Path | str, options: Any) -> list[Any]:
        """Override the file's large Gather tables with read-only maps of the same
        bytes (only the rows a run reads become resident); what must stay alive."""
        if self.map_tables is None or self.providers[0] != CPU_PROVIDER:
            return []
        pins: list[Any] = []
        for table in lookup_tables(path, self.map_tables):
            array = np.memmap(
                path, dtype=table.dtype, mode="r", offset=table.offset, shape=table.shape
            )
            value = ort.OrtValue.ortvalue_from_numpy(array)
            options.add_initializer(table.name, value)
            pins.append((array, value))
            log.debug(
                "model %s: %s mapped from the file (%d bytes)", path, table.name, table.nbytes
            )
        return pins

    def managed(
        self,
        path: Path | str,
        name: str | None = None,
        idle_ttl_s: float | None = None,
        interactive: bool = False,
        loader: Callable[[Path], Any] | None = None,
    ) -> ManagedModel:
        """A lazily loaded model that `reap()` unloads once idle for the TTL.

        ``interactive``: a model a person waits on (a search query), run with
        thread spinning for latency; batch models never spin. ``loader``: for a
        model that is no onnxruntime session (dlib's networks), what loads it
        from `path`; it is then unloaded and reloaded like the others."""
        model = ManagedModel(
            self,
            Path(path),
            name=name or Path(path).stem,
            idle_ttl_s=self.idle_ttl_s if idle_ttl_s is None else idle_ttl_s,
            interactive=interactive,
            loader=loader,
        )
        with self._lock:
            self._models.add(model)
        return model

    def reap(self) -> int:
        """Unload every model idle for longer than its TTL; returns how many.

        The daemon calls this on a schedule; nothing here starts a thread.
        """
        with self._lock:
            models = list(self._models)
        unloaded = sum(1 for m in models if m.reap(release=False))
        if unloaded:
            self.release()
        return unloaded

    def at_rest(self) -> bool:
        """No model that unloads when idle is loaded (a model kept warm may be)."""
        with self._lock:
            models = list(self._models)
        return not any(m.loaded and math.isfinite(m.idle_ttl_s) for m in models)

    def loaded_models(self) -> list[str]:
        """Names of models currently in memory (for metrics and `vaultctl status`)."""
        with self._lock:
            models = list(self._models)
        return sorted(m.name for m in models if m.loaded)


class ManagedModel:
    """One model file: loaded on first use, unloaded when idle, reloaded on demand.

    Thread-safe: the analyzer thread runs it while the daemon's scheduler may
    reap it; a run and an unload never overlap.
    """

    def __init__(
        self,
        factory: SessionFactory,
        path: Path,
        name: str,
        idle_ttl_s: float,
        interactive: bool = False,
        loader: Callable[[Path], Any] | None = None,
    ) -> None:
        self.factory = factory
        self.path = path
        self.name = name
        self.idle_ttl_s = idle_ttl_s
        self.interactive = interactive
        self.loader = loader
        self._session: Any = None
        self._last_used = 0.0
        self._lock = threading.RLock()
        self.load_count = 0

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def provider(self) -> str | None:
        """Execution provider actually in use, or None while unloaded."""
        return _provider(self._session)

    def _load(self) -> Any:
        if not self.path.is_file():
            raise ModelLoadError(self.path, "file not found")
        last: BaseException | None = None
        for attempt in (1, 2):
            try:
                started = time.monotonic()
                if self.loader is not None:
                    session = self.loader(self.path)
                else:
                    session = self.factory.create(self.path, spinning=self.interactive)
            except Exception as exc:
                last = exc
                if attempt == 1:
                    log.warning(
                        "loading model %s failed, retrying once: %s", self.path, _short(exc)
                    )
                continue
            self.load_count += 1
            # Reading the file and optimising the graph leave ~1-2x the model's
            # size freed but resident.
            self.factory.release()
            if self.factory.on_load is not None:
                self.factory.on_load(self.name, time.monotonic() - started, None)
            log.info(
                "loaded model %s from %s on %s in %.2f s",
                self.name,
                self.path,
                _provider(session),
                time.monotonic() - started,
            )
            return session
        assert last is not None
        if self.factory.on_load is not None:
            self.factory.on_load(self.name, 0.0, _short(last))
        raise ModelLoadError(self.path, _short(last)) from last

    def session(self) -> Any:
        """The loaded session (loading it if needed); marks the model as used."""
        with self._lock:
            if self._session is None:
                self._session = self._load()
            self._last_used = self.factory.clock()
            return self._session

    def signature(self) -> ModelSignature:
        return signature_of(self.session())

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """Run the model; loads it first if it was never loaded or was reaped."""
        with self._lock:
            session = self.session()
            outputs = session.run(list(output_names) if output_names else None, dict(feeds))
            self._last_used = self.factory.clock()
            return outputs

    def reap(self, release: bool = True) -> bool:
        """Unload if idle for longer than the TTL; True if it was unloaded.
        `release`: hand the memory back now (the factory does once per pass)."""
        with self._lock:
            if self._session is None:
                return False
            idle = self.factory.clock() - self._last_used
            if idle < self.idle_ttl_s:
                return False
            log.info("unloading model %s after %.0f s idle", self.name, idle)
            self._session = None  # the only reference: the session is freed here
        if release:
            self.factory.release()
        return True

    def unload(self) -> None:
        """Drop the session now (shutdown, config reload) and hand its memory back."""
        with self._lock:
            if self._session is None:
                return
            self._session = None
        self.factory.release()
