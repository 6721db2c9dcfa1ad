"""How long sampling a 50 s 720p clip takes here (printed; run with -s to see it).

The budget from issue #19: about 1-2 s on this 2-core machine. The bound asserted
is looser because the machine is shared with other test runs.
"""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import pytest
from skimage import data as skdata

from helpers.videos import make_clip, solid
from photovault.media.video import decode_video

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed"),
]

IMAGES = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
SCENES = [(solid(), 2.0)] + [(IMAGES[i % 4][:: 1 - 2 * (i // 4 % 2)], 6.0) for i in range(8)]


@pytest.mark.parametrize(
    ("keyint", "label"), [(None, "x264 default GOP (10 s)"), (30, "phone-like GOP (1.2 s)")]
)
def test_sampling_a_50_s_720p_clip_takes_about_a_second_or_two(
    tmp_path: Path, keyint: int | None, label: str
) -> None:
    path = make_clip(
        tmp_path / "long.mp4", SCENES, size=(1280, 720), keyint=keyint, preset="veryfast"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    decoded = decode_video(path, 512)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert decoded.frames is not None
    print(
        f"\n50 s 720p, {label}: {len(decoded.frames)} frames in {wall:.2f} s wall, "
        f"{cpu:.2f} s ffmpeg CPU"
    )
    assert decoded.duration == pytest.approx(50.0, abs=0.1)
    assert 8 <= len(decoded.frames) <= 20  # one per scene at least, within the caps
    assert wall < 8.0
