"""Crashes, floods and bad files: the daemon keeps going and loses nothing."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from helpers.photos import jpeg_bytes, write_jpeg


def bomb_png() -> bytes:
    """A valid PNG header claiming 100,000 x 100,000 pixels with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.slow
def test_two_thousand_files_dropped_at_once_are_each_processed_exactly_once(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory(batch_size=32)
    photos = tmp_path / "photos"
    for i in range(2000):
        d = photos / f"dir{i % 20}"
        d.mkdir(exist_ok=True)
        (d / f"IMG_{i:04d}.jpg").write_bytes(jpeg_bytes(10_000 + i, (96, 64)))
    vault.wait_idle(expect_done=2000, timeout=600)
    with vault.db() as db:
        assert db.execute("SELECT COUNT(*) FROM content").fetchone()[0] == 2000
        assert db.execute("SELECT MAX(analysis_runs) FROM content").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM files WHERE state != 'done'").fetchone()[0] == 0


@pytest.mark.slow
def test_kill_minus_nine_mid_batch_then_restart_finishes_every_file_exactly_once(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory(batch_size=8, extra="")
    cfg = vault.config
    cfg.write_text(
        cfg.read_text().replace("[throttle]\n", "[throttle]\nmax_images_per_second = 25\n")
    )
    vault.stop()
    vault.start()
    photos = tmp_path / "photos"
    for i in range(300):
        write_jpeg(photos / f"{i:03d}.jpg", 20_000 + i, (160, 120))
    vault.wait_for(lambda: vault.counts()["done"] >= 30, 60, "ingest under way")
    vault.kill9()
    with vault.db() as db:
        in_flight = db.execute("SELECT COUNT(*) FROM files WHERE state = 'processing'").fetchone()[
            0
        ]
        done_before = db.execute("SELECT COUNT(*) FROM files WHERE state = 'done'").fetchone()[0]
    assert done_before < 300, "killed too late to test anything"
    assert in_flight > 0, "kill did not land mid-batch"
    vault.start()
    vault.wait_idle(expect_done=300, timeout=120)
    with vault.db() as db:
        assert db.execute("SELECT COUNT(*) FROM content").fetchone()[0] == 300
        assert db.execute("SELECT MAX(analysis_runs) FROM content").fetchone()[0] == 1
    assert "resuming" in vault.log()


def test_bad_inputs_are_quarantined_with_clear_reasons_and_the_daemon_keeps_going(
    tmp_path: Path, vault_factory
) -> None:
    vault = vault_factory()
    photos = tmp_path / "photos"
    full = jpeg_bytes(1, (640, 480))
    (photos / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.jpg").write_text("this is a shopping list, not a photo\n" * 20)
    (photos / "bomb.png").write_bytes(bomb_png())
    weird = os.fsencode(str(photos)) + b"/caf\xe9-\xff.jpg"
    with open(weird, "wb") as fh:
        fh.write(jpeg_bytes(2))
    loop = photos / "loop"
    loop.mkdir()
    (loop / "again").symlink_to(loop)
    (photos / "link.jpg").symlink_to(photos / "missing-target.jpg")
    good = write_jpeg(photos / "good.jpg", 3)
    vault.wait_idle(timeout=60)

    st = vault.status()
    reasons = {Path(q["path"]).name: q["reason"] for q in st["quarantined"]}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "notes.jpg", "bomb.png"}, reasons
    assert "trunc" in reasons["truncated.jpg"].lower()
    assert "empty" in reasons["empty.jpg"].lower()
    assert "not an image" in reasons["notes.jpg"].lower() or "text" in reasons["notes.jpg"]
    assert "bomb" in reasons["bomb.png"].lower() or "pixel" in reasons["bomb.png"].lower()
    assert vault.show(good)["state"] == "done"
    c = st["shares"][0]["counts"]
    assert c["done"] == 2 and c["quarantined"] == 4  # good.jpg and the non-UTF-8 name
    human = vault.ctl("status").stdout
    assert "truncated.jpg" in human

    # Still alive and working after all that.
    write_jpeg(photos / "after.jpg", 4)
    vault.wait_idle(expect_done=3)


def test_a_file_deleted_while_queued_is_forgotten(tmp_path: Path, vault_factory) -> None:
    vault = vault_factory()
    vault.ctl("pause")
    doomed = write_jpeg(tmp_path / "photos" / "doomed.jpg", 5)
    vault.wait_for(lambda: vault.status()["queue_depth"] == 1, 10, "queued")
    doomed.unlink()
    vault.ctl("resume")
    vault.wait_idle(timeout=30)
    assert vault.ctl("show", str(doomed), check=False).returncode == 1
    assert vault.status()["quarantined"] == []
