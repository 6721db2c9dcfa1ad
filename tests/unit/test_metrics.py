"""photovault.metrics: state at scrape time, event counters, NVML, the loopback exporter."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from photovault import __version__
from photovault.metrics import ERROR_KINDS, Metrics, analyzer_stage, parse_listen, serve


def status(**over: Any) -> dict[str, Any]:
    """The shape of Daemon.status(), trimmed to what the metrics read."""
    st: dict[str, Any] = {
        "version": "0.1.0",
        "uptime_seconds": 12.5,
        "shares": [
            {
                "name": "family",
                "counts": {
                    "pending": 3,
                    "processing": 1,
                    "done": 40,
                    "failed": 0,
                    "quarantined": 2,
                },
                "watch": "inotify",
                "scanning": False,
                "last_scan": 1_700_000_000.0,
            },
            {
                "name": "phone",
                "counts": {"pending": 0, "processing": 0, "done": 7, "failed": 1, "quarantined": 1},
                "watch": "polling",
                "watch_problem": "inotify unavailable: ENOSPC",
                "scanning": True,
                "last_scan": None,
            },
        ],
        "queue_depth": 4,
        "settling": 2,
        "paused": False,
        "quiet_hours_active": True,
        "rate_limit": 0.5,
        "rate_per_second": 1.25,
        "last_scan": 1_700_000_000.0,
        "analyzers": {
            "active": [
                {"name": "metadata", "version": "1"},
                {
                    "name": "tagger",
                    "version": "2",
                    "model": "efficientnet-lite0",
                    "loaded": True,
                    "provider": "CPUExecutionProvider",
                },
            ],
            "disabled": [{"name": "faces", "reason": "model not installed"}],
        },
    }
    st.update(over)
    return st


def make(st: dict[str, Any] | None = None, **kw: Any) -> tuple[Metrics, CollectorRegistry]:
    reg = CollectorRegistry()
    box = {"st": st if st is not None else status()}
    kw.setdefault("nvml", False)
    return Metrics(reg, lambda: box["st"], **kw), reg


def test_files_are_exported_per_share_and_state_including_zeros() -> None:
    _m, reg = make()
    assert reg.get_sample_value("photovault_files", {"share": "family", "state": "done"}) == 40
    assert reg.get_sample_value("photovault_files", {"share": "family", "state": "failed"}) == 0
    assert reg.get_sample_value("photovault_files", {"share": "phone", "state": "quarantined"}) == 1


def test_state_is_read_from_the_provider_at_every_scrape_not_at_construction() -> None:
    calls: list[int] = []
    box = {"depth": 1}

    def provider() -> dict[str, Any]:
        calls.append(1)
        return status(queue_depth=box["depth"])

    reg = CollectorRegistry()
    Metrics(reg, provider, nvml=False)
    assert calls == []
    assert reg.get_sample_value("photovault_queue_depth") == 1
    box["depth"] = 9
    assert reg.get_sample_value("photovault_queue_depth") == 9


def test_queue_settling_and_quarantine_totals_are_gauges() -> None:
    _m, reg = make()
    assert reg.get_sample_value("photovault_settling_files") == 2
    assert reg.get_sample_value("photovault_quarantined_files") == 3


def test_throttle_state_shows_pause_quiet_hours_rate_limit_and_throughput() -> None:
    _m, reg = make()
    assert reg.get_sample_value("photovault_paused") == 0
    assert reg.get_sample_value("photovault_quiet_hours_active") == 1
    assert reg.get_sample_value("photovault_rate_limit_images_per_second") == 0.5
    assert reg.get_sample_value("photovault_throughput_images_per_second") == 1.25


def test_an_unlimited_rate_is_exported_as_infinity() -> None:
    _m, reg = make(status(rate_limit=None))
    assert reg.get_sample_value("photovault_rate_limit_images_per_second") == float("inf")


def test_watcher_mode_marks_the_polling_fallback_per_share() -> None:
    _m, reg = make()
    mode = {
        m: reg.get_sample_value("photovault_watcher_mode", {"share": "phone", "mode": m})
        for m in ("inotify", "polling", "stopped")
    }
    assert mode == {"inotify": 0, "polling": 1, "stopped": 0}
    assert (
        reg.get_sample_value("photovault_watcher_mode", {"share": "family", "mode": "inotify"}) == 1
    )


def test_a_polling_fallback_is_told_apart_from_configured_polling() -> None:
    _m, reg = make()
    assert reg.get_sample_value("photovault_watcher_fallback", {"share": "phone"}) == 1
    assert reg.get_sample_value("photovault_watcher_fallback", {"share": "family"}) == 0


def test_scan_times_are_absent_until_a_scan_finished() -> None:
    _m, reg = make()
    assert (
        reg.get_sample_value("photovault_share_last_scan_timestamp_seconds", {"share": "family"})
        == 1_700_000_000.0
    )
    assert (
        reg.get_sample_value("photovault_share_last_scan_timestamp_seconds", {"share": "phone"})
        is None
    )
    assert reg.get_sample_value("photovault_share_scanning", {"share": "phone"}) == 1
    assert reg.get_sample_value("photovault_last_complete_scan_timestamp_seconds") == 1.7e9
    _m, reg = make(status(last_scan=None))
    assert reg.get_sample_value("photovault_last_complete_scan_timestamp_seconds") is None


def test_analyzers_report_provider_loaded_model_and_disabled_ones() -> None:
    _m, reg = make()
    assert (
        reg.get_sample_value(
            "photovault_analyzer_execution_provider",
            {"analyzer": "tagger", "provider": "CPUExecutionProvider"},
        )
        == 1
    )
    assert (
        reg.get_sample_value(
            "photovault_model_loaded", {"analyzer": "tagger", "model": "efficientnet-lite0"}
        )
        == 1
    )
    assert reg.get_sample_value("photovault_analyzer_enabled", {"analyzer": "metadata"}) == 1
    assert reg.get_sample_value("photovault_analyzer_enabled", {"analyzer": "faces"}) == 0


def test_a_failing_status_provider_costs_only_the_state_metrics() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("catalog locked")

    reg = CollectorRegistry()
    m = Metrics(reg, broken, nvml=False)
    m.error("decode")
    assert reg.get_sample_value("photovault_queue_depth") is None
    assert reg.get_sample_value("photovault_errors_total", {"kind": "decode"}) == 1


def test_event_counters_count_photos_errors_and_model_loads() -> None:
    m, reg = make()
    m.photos_analyzed("tagger", 8)
    m.photos_analyzed("tagger", 0)
    m.error("sidecar")
    m.error("something-new")
    m.model_load("efficientnet-lite0", 1.5)
    assert reg.get_sample_value("photovault_photos_analyzed_total", {"analyzer": "tagger"}) == 8
    assert reg.get_sample_value("photovault_errors_total", {"kind": "sidecar"}) == 1
    assert reg.get_sample_value("photovault_errors_total", {"kind": "something-new"}) == 1
    assert reg.get_sample_value("photovault_model_load_seconds_sum") == 1.5
    assert (
        reg.get_sample_value("photovault_model_loads_total", {"model": "efficientnet-lite0"}) == 1
    )


def test_known_error_kinds_and_stages_exist_at_zero_before_anything_happened() -> None:
    _m, reg = make()
    for kind in ERROR_KINDS:
        assert reg.get_sample_value("photovault_errors_total", {"kind": kind}) == 0
    assert reg.get_sample_value("photovault_stage_duration_seconds_count", {"stage": "decode"}) == 0


def test_declared_analyzers_get_zero_series_for_rates() -> None:
    m, reg = make()
    m.declare_analyzers(["clip"])
    assert reg.get_sample_value("photovault_photos_analyzed_total", {"analyzer": "clip"}) == 0
    assert (
        reg.get_sample_value(
            "photovault_stage_duration_seconds_count", {"stage": analyzer_stage("clip")}
        )
        == 0
    )


def test_stage_and_search_durations_land_in_histograms() -> None:
    m, reg = make()
    m.observe_stage("decode", 0.02)
    m.observe_stage(analyzer_stage("tagger"), 0.3)
    m.search_latency(0.04)
    assert (
        reg.get_sample_value(
            "photovault_stage_duration_seconds_bucket", {"stage": "decode", "le": "0.025"}
        )
        == 1
    )
    assert reg.get_sample_value(
        "photovault_stage_duration_seconds_sum", {"stage": "analyzer:tagger"}
    ) == pytest.approx(0.3)
    assert reg.get_sample_value("photovault_search_latency_seconds_count") == 1


def test_build_info_carries_the_version() -> None:
    _m, reg = make()
    assert (
        reg.get_sample_value(
            "photovault_build_info",
            {"version": __version__, "python": __import__("platform").python_version()},
        )
        == 1
    )


def test_process_start_time_is_exported_for_the_restart_alert() -> None:
    _m, reg = make()
    assert (reg.get_sample_value("process_start_time_seconds") or 0) > 0


class FakeNvml:
    """pynvml's surface as far as the collector uses it (no GPU here to read)."""

    def __init__(self, count: int = 1, fail_init: bool = False) -> None:
        self.count = count
        self.fail_init = fail_init

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H100"

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=37, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(used=2 * 2**30, total=80 * 2**30, free=78 * 2**30)


def test_gpu_utilisation_and_memory_come_from_nvml_when_a_gpu_is_present() -> None:
    _m, reg = make(nvml=FakeNvml())
    labels = {"gpu": "0", "name": "NVIDIA H100"}
    assert reg.get_sample_value("photovault_gpu_utilization_ratio", labels) == 0.37
    assert reg.get_sample_value("photovault_gpu_memory_used_bytes", labels) == 2 * 2**30
    assert reg.get_sample_value("photovault_gpu_memory_total_bytes", labels) == 80 * 2**30


@pytest.mark.parametrize("nvml", [FakeNvml(count=0), FakeNvml(fail_init=True), False])
def test_gpu_metrics_are_absent_without_a_gpu_or_driver(nvml: Any) -> None:
    _m, reg = make(nvml=nvml)
    names = {m.name for m in reg.collect()}
    assert not any(n.startswith("photovault_gpu") for n in names)


def test_gpu_metrics_need_no_nvml_module_installed() -> None:
    # nvml=None imports pynvml if it is there; on this machine it may or may not be.
    _m, reg = make(nvml=None)
    assert reg.get_sample_value("photovault_queue_depth") == 4


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0:9108", "192.168.1.5:9108", ":9108", "example.org:9108", "[::]:9108", "127.0.0.1"],
)
def test_the_exporter_refuses_addresses_that_are_not_loopback(listen: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(listen)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("localhost:0", ("127.0.0.1", 0)),
        ("[::1]:9108", ("::1", 9108)),
        ("127.0.0.2:1", ("127.0.0.2", 1)),
    ],
)
def test_loopback_listen_addresses_are_parsed(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


def test_serve_exposes_the_registry_over_http_on_loopback_and_stops() -> None:
    m, reg = make()
    m.photos_analyzed("metadata", 2)
    exporter = serve("127.0.0.1:0", reg)
    try:
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        exporter.stop()
    assert 'photovault_photos_analyzed_total{analyzer="metadata"} 2.0' in body
    assert "photovault_queue_depth 4.0" in body
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_current_problems_are_exported_by_kind_with_zeros_for_the_rest() -> None:
    problems = [
        {"kind": "disk", "since": 1.0, "message": "state dir full"},
        {"kind": "share", "since": 2.0, "message": "share photos missing", "path": "/p"},
        {"kind": "share", "since": 3.0, "message": "share phone missing", "path": "/q"},
    ]
    _m, reg = make(status(problems=problems))
    assert reg.get_sample_value("photovault_problems", {"kind": "disk"}) == 1
    assert reg.get_sample_value("photovault_problems", {"kind": "share"}) == 2
    assert reg.get_sample_value("photovault_problems", {"kind": "exiftool"}) == 0
    _m, reg = make(status(problems=[]))
    assert reg.get_sample_value("photovault_problems", {"kind": "disk"}) == 0
