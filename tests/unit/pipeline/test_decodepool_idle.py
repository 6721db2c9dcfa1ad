"""The decode processes are given back at rest and start again with new work."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.photos import write_jpeg
from photovault.pipeline.decodepool import DecodePool


def test_idle_decode_processes_stop_and_start_again_for_new_work(tmp_path: Path) -> None:
    now = [0.0]
    pool = DecodePool(1, clock=lambda: now[0])
    photo = write_jpeg(tmp_path / "a.jpg", 1)
    try:
        assert not pool.running  # nothing started before there is work
        first = pool.submit(photo, 64, 10_000_000).result(timeout=60)
        assert first.sha256 and pool.running
        now[0] = 599.0
        assert not pool.release_idle(600.0) and pool.running
        now[0] = 601.0
        assert pool.release_idle(600.0) and not pool.running
        again = pool.submit(photo, 64, 10_000_000).result(timeout=60)
        assert again.sha256 == first.sha256 and pool.running
    finally:
        pool.shutdown()
    assert not pool.running
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(photo, 64, 10_000_000)  # a stopped pool stays stopped
    assert not pool.running
