"""Memory handed back at rest: clean file pages are paged out, nothing else is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers.pages import mapped_file, resident_kib
from photovault.memory import clean_file_mappings, page_out_file_pages

SMAPS = """\
7f0000000000-7f0000200000 r-xp 00000000 08:01 1234 /usr/lib/libbig.so
Rss:                 900 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
Swap:                  0 kB
7f0000200000-7f0000201000 r--p 00200000 08:01 1234 /usr/lib/libbig.so
Rss:                   4 kB
Anonymous:             4 kB
Private_Dirty:         4 kB
7f0000300000-7f0000400000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
7f0000500000-7f0000600000 r--s 00000000 08:01 99 /data/table.lance
Rss:                 128 kB
Shared_Dirty:          0 kB
7f0000700000-7f0000800000 rw-s 00000000 08:01 98 /data/written.bin
Rss:                  64 kB
Shared_Dirty:         64 kB
7f0000900000-7f0000a00000 r--p 00000000 08:01 97 /usr/lib/cold.so
Rss:                   0 kB
7f0000b00000-7f0000c00000 rw-s 00000000 00:05 640 /dev/nvidia0
Rss:                  16 kB
"""


def test_only_clean_resident_file_mappings_are_chosen() -> None:
    assert clean_file_mappings(SMAPS) == [
        (0x7F0000000000, 0x7F0000200000, 900),  # code
        (0x7F0000500000, 0x7F0000600000, 128),  # a read-only file map
    ]  # not: relocated data (anonymous), the heap, a dirty shared map, nothing resident, a device


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def test_paging_out_hands_back_a_clean_file_map_and_nothing_anonymous(tmp_path: Path) -> None:
    path = tmp_path / "table.bin"
    mapped = mapped_file(path, mib=8)
    scratch = np.ones(1 << 20)  # 8 MiB anonymous, written
    before = resident_kib(path)
    anon = status_kib("RssAnon:")
    assert before >= 7 * 1024
    assert page_out_file_pages() >= before
    assert resident_kib(path) < 1024
    assert status_kib("RssAnon:") >= anon - 1024  # anonymous pages stay (no swap is written)
    assert scratch.sum() == 1 << 20
    assert mapped[5 << 20] == path.read_bytes()[5 << 20]  # the page comes back on use


def test_library_code_paged_out_still_runs(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(tmp_path / "db")
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(640, dtype=np.float32)), 64)
    table = db.create_table("t", pa.table({"id": np.arange(10), "v": vectors}))
    assert page_out_file_pages() > 0
    rows = table.search(np.ones(64, dtype=np.float32), vector_column_name="v").limit(3).to_list()
    assert len(rows) == 3


CYCLES = """
import sys, threading
from pathlib import Path
{prepare}
from photovault.geo import places

def anonymous_mib():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) / 1024

geocoder = places.default_geocoder()
sizes = []
for _ in range(6):  # the daemon's worker thread loads, the main loop unloads
    worker = threading.Thread(target=geocoder.reverse, args=(48.5725, 7.815))
    worker.start()
    worker.join()
    assert places.release_idle(0)
    sizes.append(anonymous_mib())
print(*sizes)
"""


def test_vaultd_hands_back_what_each_idle_unload_drops() -> None:
    # With glibc's sliding mmap threshold the place data loaded by a thread came
    # from that thread's heap after the first cycle, and 30-45 MiB of each unload
    # stayed resident (memory.fix_mmap_threshold).
    code = CYCLES.format(
        prepare="from photovault.daemon_main import prepare_process\nprepare_process()"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    first, *later = (float(v) for v in out.stdout.split())
    assert max(later) - first < 12, (first, later)  # the place data is ~45 MiB of it
