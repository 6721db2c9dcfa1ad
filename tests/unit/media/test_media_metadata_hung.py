"""A hung exiftool (stopped, stuck on a dead network share) is killed after a deadline:
the read fails as `MetadataUnavailable` (the worker gives the batch back and reports
it) and the next read starts a fresh exiftool."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from media_builders import jpeg_bytes
from PIL import Image

from photovault.media.metadata import MetadataReader, MetadataUnavailable
from photovault.media.types import PhotoMetadata


def test_a_stopped_exiftool_is_killed_after_the_deadline_and_replaced(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(Image.new("RGB", (64, 48), (200, 30, 30))))
    with MetadataReader(call_timeout=1.0) as reader:
        assert isinstance(reader.read([photo])[photo], PhotoMetadata)
        pid = reader.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(MetadataUnavailable, match="did not answer"):
            reader.read([photo])
        assert time.monotonic() - started < 10
        assert isinstance(reader.read([photo])[photo], PhotoMetadata)
        assert reader.pid != pid
