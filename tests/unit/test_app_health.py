"""Daemon health: a stage that is not running is a problem and stops the watchdog."""

from __future__ import annotations

from pathlib import Path

from helpers.vault import write_config
from photovault.app import Daemon
from photovault.config import load


def test_a_stopped_stage_makes_the_daemon_unhealthy_and_is_reported(tmp_path: Path) -> None:
    daemon = Daemon(load(write_config(tmp_path)))
    daemon.start()
    try:
        daemon.check_health()
        assert daemon.healthy()
        assert not [p for p in daemon.problems.snapshot() if p.kind == "stage"]

        daemon.sidecars.stop()  # its thread ends, as if it had died
        daemon.check_health()
        assert not daemon.healthy()
        (stage,) = [p for p in daemon.problems.snapshot() if p.kind == "stage"]
        assert stage.key == "sidecars" and "stopped" in stage.message
        assert any(p["kind"] == "stage" for p in daemon.status()["problems"])
    finally:
        daemon.stop()


def test_a_state_dir_that_takes_no_writes_is_a_disk_problem_until_it_does(
    tmp_path: Path,
) -> None:
    daemon = Daemon(load(write_config(tmp_path)))
    daemon.start()
    try:
        probe = daemon.settings.state_dir / ".vaultd-probe"
        probe.mkdir()  # the probe cannot be written: as good as a read-only disk here
        daemon.state_probe.probe()
        (disk,) = [p for p in daemon.problems.snapshot() if p.kind == "disk"]
        assert disk.kind == "disk" and str(daemon.settings.state_dir) in disk.message
        probe.rmdir()
        daemon.state_probe.probe()
        assert not [p for p in daemon.problems.snapshot() if p.kind == "disk"]
    finally:
        daemon.stop()


def test_a_failing_clustering_pass_is_a_stage_problem_until_a_pass_works(
    tmp_path: Path,
) -> None:
    daemon = Daemon(load(write_config(tmp_path)))
    daemon.start()
    try:
        daemon.people.last_error = "OperationalError: database or disk is full"
        daemon.check_health()
        (stage,) = [p for p in daemon.problems.snapshot() if p.kind == "stage"]
        assert stage.key == "people" and "disk is full" in stage.message
        daemon.people.last_error = None
        daemon.check_health()
        assert not [p for p in daemon.problems.snapshot() if p.kind == "stage"]
    finally:
        daemon.stop()
