"""Faults of the state dir and crashes: nothing lost, every fault shown while it lasts,
work resumes by itself, and `vaultctl check` says catalog, index and sidecars agree."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import lancedb
import pytest

from helpers.photos import write_jpeg
from helpers.vault import VaultProcess, write_config


def check(vault: VaultProcess) -> tuple[int, dict]:
    r = vault.ctl("check", "--json", check=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def indexed_ids(state: Path) -> set[int]:
    table = lancedb.connect(str(state / "index")).open_table("photos")
    return set(table.search().select(["id"]).limit(None).to_arrow()["id"].to_pylist())


def done_ids(vault: VaultProcess) -> set[int]:
    with vault.db() as db:
        return {r[0] for r in db.execute("SELECT id FROM files WHERE state = 'done'")}


def test_photos_done_just_before_a_kill_minus_nine_reach_the_index_after_restart(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory(batch_size=4)
    photos = tmp_path / "photos"
    for i in range(12):
        write_jpeg(photos / f"beach_{i:02d}.jpg", 100 + i)
    # Kill the moment the catalog says done: the index still holds them in its
    # write buffer (flushed every 2 s), which a kill -9 loses.
    vault.wait_for(lambda: vault.counts()["done"] == 12, 60, "all done")
    vault.kill9()
    vault.start()
    vault.wait_for(lambda: indexed_ids(tmp_path / "state") >= done_ids(vault), 60, "repaired")
    vault.wait_idle(expect_done=12)
    rc, report = check(vault)
    assert rc == 0, report
    hits = json.loads(vault.ctl("search", "beach", "--json", "--limit", "50").stdout)
    assert len(hits) == 12


def test_rows_missing_from_the_index_are_repaired_at_start_and_by_rescan(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    for i in range(6):
        write_jpeg(photos / f"dog_{i}.jpg", 200 + i)
    vault.wait_idle(expect_done=6)
    vault.wait_for(lambda: check(vault)[0] == 0, 30, "agree")

    # What a crash leaves behind: rows lost from the index while the catalog says done.
    vault.stop()
    table = lancedb.connect(str(tmp_path / "state" / "index")).open_table("photos")
    table.delete("path = 'dog_0.jpg' OR path = 'dog_1.jpg'")
    assert len(indexed_ids(tmp_path / "state")) == 4
    vault.start()
    vault.wait_for(lambda: len(indexed_ids(tmp_path / "state")) == 6, 30, "repaired at start")

    # While running: a rescan finds and repairs what is missing, and check lists it first.
    table = lancedb.connect(str(tmp_path / "state" / "index")).open_table("photos")
    table.delete("path = 'dog_2.jpg'")
    rc, report = check(vault)
    assert rc == 1 and [m["path"] for m in report["index_missing"]] == ["dog_2.jpg"], report
    human = vault.ctl("check", check=False)
    assert human.returncode == 1 and "dog_2.jpg" in human.stdout
    r = vault.ctl("rescan")
    assert r.returncode == 0, r.stderr
    vault.wait_for(lambda: check(vault)[0] == 0, 30, "repaired by rescan")
    assert json.loads(vault.ctl("search", "dog", "--json").stdout)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "48m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> None:
    """Write until the file system says it is full, to the last block."""
    for name, chunk in (("filler.bin", 1 << 20), ("filler2.bin", 512)):
        try:
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            return
        try:
            while True:
                os.write(fd, b"\0" * chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_state_disk_is_reported_and_work_resumes_by_itself_when_space_returns(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state):
        cfg = write_config(tmp_path, settle=0.3)
        vault = VaultProcess(cfg, tmp_path)
        vault.start()
        try:
            photos = tmp_path / "photos"
            for i in range(5):
                write_jpeg(photos / f"before_{i}.jpg", 300 + i)
            vault.wait_idle(expect_done=5)

            fill(state)
            for i in range(40):
                write_jpeg(photos / f"during_{i:02d}.jpg", 400 + i)

            def disk_problem() -> bool:
                return any(p["kind"] == "disk" for p in vault.status().get("problems", []))

            vault.wait_for(disk_problem, 30, "the full disk reported")
            st = vault.ctl("status", check=False)
            assert st.returncode == 1 and "PROBLEMS" in st.stdout and "disk" in st.stdout
            assert vault.ctl("rescan", check=False).returncode == 2  # the scan cannot record
            time.sleep(3)  # the stages keep failing for a while; none may die of it

            for name in ("filler.bin", "filler2.bin"):
                (state / name).unlink(missing_ok=True)
            vault.wait_idle(expect_done=45, timeout=120)
            deadline = time.monotonic() + 30
            while (problems := vault.status()["problems"]) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not problems, problems
            assert vault.ctl("status", check=False).returncode == 0
            vault.wait_for(lambda: check(vault)[0] == 0, 30, "catalog and index agree")
            log = vault.log()
            assert "Exception in thread" not in log
            assert vault.proc is not None and vault.proc.poll() is None
        finally:
            vault.stop()


@pytest.mark.slow
def test_kill_minus_nine_at_any_moment_then_restart_leaves_catalog_index_and_sidecars_agreeing(
    tmp_path: Path, vault_factory, real_tagger_store: Path
) -> None:
    """Kills land during decoding, analysis, index writes and sidecar writes alike."""
    vault = vault_factory(models_from=real_tagger_store, analyzers=["metadata", "tagger"])
    photos = tmp_path / "photos"
    n = 0
    for round_, delay in enumerate((0.8, 2.0, 3.5)):
        for i in range(16):
            write_jpeg(photos / f"r{round_}" / f"IMG_{i:02d}.jpg", 1000 + n)
            n += 1
        time.sleep(delay)
        vault.kill9()
        vault.start()
    vault.wait_idle(expect_done=n, timeout=300)
    vault.wait_for(lambda: check(vault)[0] == 0, 120, f"agree: {check(vault)[1]}")
    leftovers = [p for p in photos.rglob("*") if ".pvtmp-" in p.name]
    assert leftovers == []
    with vault.db() as db:
        assert db.execute("SELECT MAX(analysis_runs) FROM content").fetchone()[0] == 1
    assert len(indexed_ids(tmp_path / "state")) == n


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_state_disk_full_at_start_makes_vaultd_wait_and_start_by_itself(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state, size="32m"):
        cfg = write_config(tmp_path, settle=0.3)
        write_jpeg(tmp_path / "photos" / "first.jpg", 600)
        vault = VaultProcess(cfg, tmp_path)
        vault.start()
        vault.wait_idle(expect_done=1)
        vault.stop()
        fill(state)
        try:
            with pytest.raises(AssertionError, match="did not open its socket"):
                vault.start(timeout=8)
            assert vault.proc is not None and vault.proc.poll() is None  # waiting, not dead
            assert "cannot be written" in vault.log()
            for name in ("filler.bin", "filler2.bin"):
                (state / name).unlink(missing_ok=True)
            write_jpeg(tmp_path / "photos" / "second.jpg", 601)
            vault.wait_for(lambda: vault.socket.exists() and vault._ping(), 60, "started")
            vault.wait_idle(expect_done=2, timeout=60)
        finally:
            vault.stop()


def test_a_sidecar_deleted_from_disk_is_listed_by_check_and_written_again_by_rescan(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory(analyzers=["metadata", "faces"])
    labelled = Path(__file__).resolve().parents[1] / "fixtures" / "faces" / "labelled"
    photo = tmp_path / "photos" / "portrait.jpg"
    shutil.copyfile(next(p for p in sorted(labelled.iterdir()) if p.suffix == ".jpg"), photo)
    sidecar = photo.with_name(photo.name + ".xmp")
    vault.wait_idle(expect_done=1, timeout=120)
    vault.wait_for(lambda: check(vault)[0] == 0 and sidecar.exists(), 60, "sidecar written")

    sidecar.unlink()
    rc, report = check(vault)
    assert rc == 1 and "missing" in report["sidecars"][0]["problem"], report
    assert vault.ctl("rescan").returncode == 0
    vault.wait_for(lambda: sidecar.exists() and check(vault)[0] == 0, 60, "sidecar back")
