"""The monitoring files against a real Prometheus scraping a real vaultd.

promtool checks the config and rules (and runs the alert unit tests in
deploy/prometheus/tests/); then a Prometheus bound to 127.0.0.1 scrapes a
vaultd that has ingested photos, and every PromQL expression of every
Grafana panel and alert rule must evaluate without error and find its series.

Needs the Debian packages `prometheus` (prometheus + promtool).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.photos import write_jpeg
from helpers.vault import REPO, VaultProcess, write_config

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "photovault.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

# Series that exist only with a GPU, an ONNX analyzer, or node_exporter; the
# test daemon runs the metadata analyzer on a CPU, so these may be empty
# (their expressions must still evaluate).
MAY_BE_ABSENT = re.compile(
    r"^(photovault_gpu_.*|photovault_analyzer_execution_provider|photovault_model_loaded"
    r"|photovault_model_loads_total|node_.*)$"
)
METRIC = re.compile(r"\b((?:photovault|process|node)_[a-z0-9_]+|up)\b")


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return exe


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_scrape_config() -> None:
    result = run_promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = run_promtool("test", "rules", str(DEPLOY / "prometheus" / "tests" / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_uses_the_provisioned_datasource_everywhere() -> None:
    uid = re.search(
        r"uid:\s*(\S+)", (DEPLOY / "grafana/provisioning/datasources/photovault.yaml").read_text()
    )
    assert uid is not None
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid.group(1), panel["title"]
            assert panel["targets"], panel["title"]


def test_the_compose_stack_uses_the_host_network_and_binds_loopback_only() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert text.count("network_mode: host") == 2
    assert "--web.listen-address=127.0.0.1:9090" in text
    assert "GF_SERVER_HTTP_ADDR: 127.0.0.1" in text
    for mount in re.findall(r"- \./([\w/.-]+):", text):
        assert (DEPLOY / mount).exists(), mount


# -- a real Prometheus scraping a real vaultd ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def listening_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, _, p = local.partition(":")
            if state == "0A" and int(p, 16) == port:
                found.add(addr)
    return found


class Prometheus:
    def __init__(self, base: Path, target: str) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.skip("prometheus not installed (apt-get install prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base.mkdir(parents=True, exist_ok=True)
        config = base / "prometheus.yml"
        # The shipped rules file, scraped every second instead of every 30 s.
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {ALERTS}\n"
            "scrape_configs:\n  - job_name: photovault\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        check = run_promtool("check", "config", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(base / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={base / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        self.wait(lambda: self._ready(), 60, "prometheus did not become ready")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.proc.returncode}")
            if cond():
                return
            time.sleep(0.5)
        raise AssertionError(what)

    def query(self, expr: str) -> dict[str, Any]:
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return get(url)
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error as JSON
            return json.loads(exc.read())

    def result(self, expr: str) -> list[dict[str, Any]]:
        return list(self.query(expr).get("data", {}).get("result", []))

    def rules(self) -> list[dict[str, Any]]:
        groups = get(self.url + "/api/v1/rules")["data"]["groups"]
        return [r for g in groups for r in g["rules"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def scraped_vault(tmp_path: Path) -> Iterator[tuple[VaultProcess, Prometheus]]:
    port = free_port()
    vault = VaultProcess(write_config(tmp_path), tmp_path)
    vault.start(env={"VAULT_METRICS__LISTEN": f'"127.0.0.1:{port}"'})
    prom: Prometheus | None = None
    try:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).close()
        except OSError as exc:
            raise AssertionError(
                f"vaultd does not serve metrics on [metrics] listen 127.0.0.1:{port} ({exc}); "
                "the daemon must start photovault.metrics.serve() from Daemon.start()"
            ) from exc
        prom = Prometheus(tmp_path / "prom", f"127.0.0.1:{port}")
        yield vault, prom
    finally:
        if prom is not None:
            prom.stop()
        vault.stop()


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends for our variables: a rate window and "All" instances."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$instance", ".*")
    )


@pytest.mark.slow
def test_every_panel_and_alert_expression_evaluates_and_finds_data_after_an_ingest(
    tmp_path: Path,
    scraped_vault: tuple[VaultProcess, Prometheus],
) -> None:
    vault, prom = scraped_vault
    assert listening_addresses(prom.port) == {"0100007F"}, "prometheus must bind 127.0.0.1 only"
    photos = tmp_path / "photos"
    for i in range(4):
        write_jpeg(photos / f"p{i}.jpg", i)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    vault.wait_idle(timeout=90)

    # Enough scrapes that rate() over 1m has several samples on both sides of the ingest.
    def scrapes() -> int:
        series = prom.result("photovault_queue_depth[1m]")
        return len(series[0]["values"]) if series else 0

    prom.wait(lambda: scrapes() >= 5, 60, "prometheus did not collect five scrapes of vaultd")
    up = prom.result('up{job="photovault"}')
    assert up and up[0]["value"][1] == "1", up

    problems: list[str] = []
    for title, expr in dashboard_exprs():
        promql = grafana_to_promql(expr)
        res = prom.query(promql)
        names = set(METRIC.findall(promql))
        if res.get("status") != "success":
            problems.append(f"panel {title!r}: {promql}: {res.get('error')}")
        elif not res["data"]["result"] and not any(MAY_BE_ABSENT.match(n) for n in names):
            problems.append(f"panel {title!r}: {promql}: no data")

    # The rules as Prometheus loaded them: each must have evaluated cleanly, and
    # every series it watches (bar other exporters') must exist.
    def evaluated() -> bool:
        return all(not r.get("lastEvaluation", "0001").startswith("0001") for r in prom.rules())

    prom.wait(evaluated, 30, "alert rules were not evaluated")
    rules = prom.rules()
    assert {r["name"] for r in rules} >= {
        "PhotovaultQueueNotDraining",
        "PhotovaultHighErrorRate",
        "PhotovaultRestarting",
        "PhotovaultScanStale",
    }
    for rule in rules:
        if rule["health"] != "ok":
            problems.append(f"rule {rule['name']}: {rule['health']}: {rule.get('lastError')}")
        res = prom.query(rule["query"])
        if res.get("status") != "success":
            problems.append(f"rule {rule['name']}: {res.get('error')}")
        for name in sorted(set(METRIC.findall(rule["query"]))):
            if MAY_BE_ABSENT.match(name):
                continue
            if not prom.result(f'{name}{{job="photovault"}}'):
                problems.append(f"rule {rule['name']}: series {name} missing")
    assert problems == [], "\n".join(problems)
    # The ingest shows up in the numbers, not just as series that exist.
    done = prom.result('sum(photovault_files{state="done"})')
    assert float(done[0]["value"][1]) == 4
