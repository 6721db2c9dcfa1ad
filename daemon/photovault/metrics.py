"""Every Prometheus metric of vaultd, on one injected registry.

Two kinds live here, and the split is deliberate:

* **State** (files per state, queue depth, throttle, watcher mode, loaded
  models, GPU) is computed at scrape time by custom collectors that ask
  `status_provider()` -- the same dict `Daemon.status()` gives vaultctl -- so
  a metric can never drift from what `vaultctl status` shows, and nothing has
  to remember to update a gauge.
* **Events** (photos analyzed, stage durations, errors, model loads, search
  latency) are counters and histograms the worker and query handlers bump
  through the small methods of `Metrics`.

The registry is an argument (prometheus/client_python's own habit), so tests
use a fresh `CollectorRegistry()` and production never touches the global one.
`serve()` starts the HTTP exporter and refuses anything but loopback: the
numbers include share names, which are nobody else's business.
"""

from __future__ import annotations

import ipaddress
import logging
import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from photovault import __version__
from photovault.problems import KINDS as PROBLEM_KINDS

log = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]

# File states as the catalog names them; every one is exported (zeros too) so
# a panel or alert on a state that is empty right now still has a series.
FILE_STATES = ("pending", "processing", "done", "failed", "quarantined")
WATCH_MODES = ("inotify", "polling", "offline", "stopped")
# Pipeline stages, one histogram series each. Analyzers are `analyzer_stage(name)`.
STAGES = ("decode", "metadata", "sidecar", "index")
# Error kinds known up front, pre-initialised to 0 so `rate()` works before
# the first error; other kinds are accepted and appear when first counted.
ERROR_KINDS = (
    "decode",
    "metadata",
    "analyzer",
    "sidecar",
    "index",
    "model_load",
    "scan",
    "watcher",
    "query",
)

# Per-photo decode is ~10 ms..seconds; a batch through an analyzer up to a minute.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MODEL_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SEARCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def analyzer_stage(name: str) -> str:
    """Stage label of one analyzer, so all analyzers sort together (`stage=~"analyzer:.*"`)."""
    return f"analyzer:{name}"


class Metrics:
    """The daemon's metrics. Construct once per registry; the worker calls the methods.

    `status_provider` is called on every scrape (not before); a failing
    provider costs that scrape its state metrics, never the event metrics.
    `nvml` is the pynvml-compatible module to read GPUs with: None means
    "import it if installed", False means "no GPU metrics" (tests).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        status_provider: StatusProvider | None = None,
        *,
        version: str = __version__,
        nvml: Any = None,
        process: bool = True,
        proc: str = "/proc",
    ) -> None:
        self.registry = registry
        self.photos = Counter(
            "photovault_photos_analyzed_total",
            "Photos an analyzer finished (errors excluded), by analyzer.",
            ["analyzer"],
            registry=registry,
        )
        self.stages = Histogram(
            "photovault_stage_duration_seconds",
            "Time per pipeline stage: per photo for decode, per batch for the others.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "photovault_errors_total",
            "Errors by kind (decode, analyzer, sidecar, index, model_load, ...).",
            ["kind"],
            registry=registry,
        )
        # One unlabelled histogram keeps the dashboard panel alive before any
        # model loaded; the labelled counter says which model it was.
        self.model_load_seconds = Histogram(
            "photovault_model_load_seconds",
            "Time to load a model into an inference session.",
            buckets=MODEL_LOAD_BUCKETS,
            registry=registry,
        )
        self.model_loads = Counter(
            "photovault_model_loads_total",
            "Model loads, by model.",
            ["model"],
            registry=registry,
        )
        self.search_seconds = Histogram(
            "photovault_search_latency_seconds",
            "Time to answer one search request on the query socket.",
            buckets=SEARCH_BUCKETS,
            registry=registry,
        )
        for stage in STAGES:
            self.stages.labels(stage)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        registry.register(_BuildInfoCollector(version))
        if status_provider is not None:
            registry.register(StatusCollector(status_provider))
        gpu = GpuCollector.create(nvml)
        if gpu is not None:
            registry.register(gpu)
        if process:
            # process_start_time_seconds is what the restart alert watches.
            ProcessCollector(registry=registry, proc=proc)

    # -- the calls the pipeline makes ----------------------------------------------

    def declare_analyzers(self, names: Iterable[str]) -> None:
        """Create the per-analyzer series at 0 (call on start and reload), so
        rates exist before the first photo and a quiet analyzer shows as 0, not as gone."""
        for name in names:
            self.photos.labels(name)
            self.stages.labels(analyzer_stage(name))

    def photos_analyzed(self, analyzer: str, n: int = 1) -> None:
        if n > 0:
            self.photos.labels(analyzer).inc(n)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """`stage`: one of STAGES or `analyzer_stage(name)`."""
        self.stages.labels(stage).observe(max(seconds, 0.0))

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def model_load(self, name: str, seconds: float) -> None:
        self.model_load_seconds.observe(max(seconds, 0.0))
        self.model_loads.labels(name).inc()

    def search_latency(self, seconds: float) -> None:
        self.search_seconds.observe(max(seconds, 0.0))


class _BuildInfoCollector(Collector):
    """photovault_build_info{version, python}: joins dashboards to a release."""

    def __init__(self, version: str) -> None:
        self.labels = {"version": version, "python": platform.python_version()}

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("photovault_build", "vaultd version and Python it runs on.")
        info.add_metric([], self.labels)
        yield info


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily | None:
    return None if value is None else GaugeMetricFamily(name, doc, value=float(value))


class StatusCollector(Collector):
    """State metrics read from `Daemon.status()` at scrape time (STYLE habit 10)."""

    def __init__(self, status_provider: StatusProvider) -> None:
        self.status_provider = status_provider

    def describe(self) -> list[Metric]:
        # Registering must not call the provider: the daemon may not be up yet.
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            st = self.status_provider()
        except Exception:
            log.exception("metrics: status unavailable; state metrics skipped this scrape")
            return
        yield from self._shares(st.get("shares") or [])
        quarantined = sum(
            (s.get("counts") or {}).get("quarantined", 0) for s in st.get("shares") or []
        )
        scalars = [
            ("photovault_queue_depth", "Files pending or being processed.", st.get("queue_depth")),
            (
                "photovault_settling_files",
                "Files seen but not yet settled (still being written).",
                st.get("settling"),
            ),
            (
                "photovault_quarantined_files",
                "Files given up on after repeated failures.",
                quarantined,
            ),
            (
                "photovault_paused",
                "1 while the worker is paused by vaultctl.",
                _flag(st.get("paused")),
            ),
            (
                "photovault_quiet_hours_active",
                "1 during configured quiet hours.",
                _flag(st.get("quiet_hours_active")),
            ),
            (
                "photovault_throughput_images_per_second",
                "Images completed per second over the last minute.",
                st.get("rate_per_second"),
            ),
            (
                "photovault_last_complete_scan_timestamp_seconds",
                "When the oldest of the shares' last reconcile scans finished"
                " (all shares scanned).",
                st.get("last_scan"),
            ),
            (
                "photovault_uptime_seconds",
                "Seconds since the daemon started.",
                st.get("uptime_seconds"),
            ),
        ]
        for name, doc, value in scalars:
            g = _gauge(name, doc, value)
            if g is not None:
                yield g
        if "rate_limit" in st:
            # current_rate: None = unlimited, 0 = paused; +Inf says "unlimited" in PromQL terms.
            rate = st["rate_limit"]
            yield GaugeMetricFamily(
                "photovault_rate_limit_images_per_second",
                "Images/s the throttle allows now (+Inf: unlimited, 0: paused).",
                value=float("inf") if rate is None else float(rate),
            )
        yield from self._analyzers(st.get("analyzers") or {})
        problems = GaugeMetricFamily(
            "photovault_problems",
            "Current faults by kind (disk, share, stage, exiftool, sidecars, index, catalog);"
            " vaultctl status lists them.",
            labels=["kind"],
        )
        by_kind = dict.fromkeys(PROBLEM_KINDS, 0)
        for p in st.get("problems") or []:
            by_kind[str(p.get("kind"))] = by_kind.get(str(p.get("kind")), 0) + 1
        for kind, n in sorted(by_kind.items()):
            problems.add_metric([kind], float(n))
        yield problems

    @staticmethod
    def _shares(shares: list[Mapping[str, Any]]) -> Iterator[Metric]:
        files = GaugeMetricFamily(
            "photovault_files",
            "Files in the catalog by share and state.",
            labels=["share", "state"],
        )
        mode = GaugeMetricFamily(
            "photovault_watcher_mode",
            "1 for the share's current watch mode (polling = inotify fallback), else 0.",
            labels=["share", "mode"],
        )
        fallback = GaugeMetricFamily(
            "photovault_watcher_fallback",
            "1 when the share is polled because inotify failed (not because it was configured).",
            labels=["share"],
        )
        scanning = GaugeMetricFamily(
            "photovault_share_scanning",
            "1 while a reconcile scan of the share runs.",
            labels=["share"],
        )
        last_scan = GaugeMetricFamily(
            "photovault_share_last_scan_timestamp_seconds",
            "When the share's last reconcile scan finished.",
            labels=["share"],
        )
        for s in shares:
            name = str(s.get("name"))
            counts = s.get("counts") or {}
            for state in sorted(set(FILE_STATES) | set(counts)):
                files.add_metric([name, state], float(counts.get(state, 0)))
            current = s.get("watch", "stopped")
            for m in sorted(set(WATCH_MODES) | {current}):
                mode.add_metric([name, m], 1.0 if m == current else 0.0)
            fallback.add_metric([name], _flag(s.get("watch_problem")))
            scanning.add_metric([name], _flag(s.get("scanning")))
            if s.get("last_scan"):
                last_scan.add_metric([name], float(s["last_scan"]))
        yield from (files, mode, fallback, scanning, last_scan)

    @staticmethod
    def _analyzers(analyzers: Mapping[str, Any]) -> Iterator[Metric]:
        enabled = GaugeMetricFamily(
            "photovault_analyzer_enabled",
            "1 for a running analyzer, 0 for one configured but disabled (see vaultctl status).",
            labels=["analyzer"],
        )
        provider = GaugeMetricFamily(
            "photovault_analyzer_execution_provider",
            "1 for the onnxruntime execution provider an analyzer's model runs on.",
            labels=["analyzer", "provider"],
        )
        loaded = GaugeMetricFamily(
            "photovault_model_loaded",
            "1 while an analyzer's model is loaded in memory.",
            labels=["analyzer", "model"],
        )
        for a in analyzers.get("active") or []:
            name = str(a.get("name"))
            enabled.add_metric([name], 1.0)
            if a.get("provider"):
                provider.add_metric([name, str(a["provider"])], 1.0)
            if "loaded" in a:
                loaded.add_metric([name, str(a.get("model") or "")], _flag(a.get("loaded")))
        for a in analyzers.get("disabled") or []:
            enabled.add_metric([str(a.get("name"))], 0.0)
        yield from (enabled, provider, loaded)


def _flag(value: Any) -> float:
    return 1.0 if value else 0.0


class GpuCollector(Collector):
    """GPU utilisation and memory through NVML; absent where there is no GPU.

    Absent rather than zero: "0 % busy" and "no GPU" must not look alike.
    """

    def __init__(self, nvml: Any, count: int) -> None:
        self.nvml = nvml
        self.count = count

    @classmethod
    def create(cls, nvml: Any = None) -> GpuCollector | None:
        if nvml is False:
            return None
        if nvml is None:
            try:
                import pynvml  # nvidia-ml-py; optional
            except ImportError:
                return None
            nvml = pynvml
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:  # NVMLError_* when the driver or device is missing
            log.debug("metrics: no GPU metrics (%s)", exc)
            return None
        if count <= 0:
            return None
        log.info("metrics: exporting utilisation and memory of %d GPU(s)", count)
        return cls(nvml, count)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        util = GaugeMetricFamily(
            "photovault_gpu_utilization_ratio",
            "Fraction of time the GPU was busy (NVML, last sample).",
            labels=["gpu", "name"],
        )
        used = GaugeMetricFamily(
            "photovault_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu", "name"]
        )
        total = GaugeMetricFamily(
            "photovault_gpu_memory_total_bytes", "GPU memory in all.", labels=["gpu", "name"]
        )
        for i in range(self.count):
            try:
                h = self.nvml.nvmlDeviceGetHandleByIndex(i)
                name = self.nvml.nvmlDeviceGetName(h)
                name = name.decode() if isinstance(name, bytes) else str(name)
                rates = self.nvml.nvmlDeviceGetUtilizationRates(h)
                mem = self.nvml.nvmlDeviceGetMemoryInfo(h)
            except Exception as exc:
                log.debug("metrics: GPU %d unreadable: %s", i, exc)
                continue
            util.add_metric([str(i), name], float(rates.gpu) / 100.0)
            used.add_metric([str(i), name], float(mem.used))
            total.add_metric([str(i), name], float(mem.total))
        yield from (util, used, total)


# -- the HTTP exporter -----------------------------------------------------------------


@dataclass
class Exporter:
    """A running exporter; `stop()` closes the listening socket."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        log.info("metrics exporter on %s:%d stopped", self.host, self.port)


def parse_listen(listen: str) -> tuple[str, int]:
    """ "127.0.0.1:9108" / "[::1]:9108" / "localhost:9108" -> (loopback IP, port).

    Raises ValueError for anything that is not loopback, whatever config.py
    already checked: this is the function that actually binds.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"metrics listen {listen!r}: expected HOST:PORT such as 127.0.0.1:9108")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics listen {listen!r}: host must be a loopback address") from None
    if not ip.is_loopback:
        raise ValueError(f"metrics listen {listen!r}: refusing a non-loopback address")
    n = int(port)
    if not 0 <= n <= 65535:
        raise ValueError(f"metrics listen {listen!r}: port out of range")
    return str(ip), n


def serve(listen: str, registry: CollectorRegistry) -> Exporter:
    """Start the /metrics HTTP server in a daemon thread, loopback only.

    Port 0 picks a free port (tests); the handle's `port` says which.
    """
    host, port = parse_listen(listen)
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address[1]
    log.info("metrics exporter listening on %s port %d", host, bound)
    return Exporter(host, int(bound), server, thread)
