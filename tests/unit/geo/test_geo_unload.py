"""Place data unloads at rest like the models, and comes back on the next lookup."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers.pages import mapped_file, resident_kib
from helpers.vault import write_config
from photovault.app import Daemon
from photovault.config import load
from photovault.geo import places, zones
from photovault.geo.gazetteer import _row_chunks
from photovault.geo.places import Geocoder

KEHL = (48.5725, 7.8150)  # a border town: Germany, though Strasbourg's centre is nearer
LISBON = (38.7223, -9.1393)


def test_idle_place_data_unloads_and_the_next_lookup_loads_it_again() -> None:
    g = Geocoder()
    before = g.reverse(*KEHL)
    assert before is not None and before.city == "Kehl"
    assert not g.unload_if_idle(3600)  # used a moment ago
    assert g.loaded
    time.sleep(0.05)
    assert g.unload_if_idle(0.01)
    assert not g.loaded and g._names == [] and g._countries == {}
    assert g.reverse(*KEHL) == before  # loads again, same answer
    assert g.loaded
    assert g.unload_if_idle(0)
    # The name index is dropped with the tables and built again.
    assert "pt" in g.place_keys_for("Portugal")
    assert g.town("Lisbon")[0].city == "Lisbon"


def test_lookups_running_while_it_unloads_all_succeed() -> None:
    g = Geocoder()
    g.load()
    errors: list[BaseException] = []
    answers: set[object] = set()
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            try:
                answers.add(g.reverse(*LISBON))
                answers.add(g.place_keys_for("Kehl")[0])
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=look) for _ in range(3)]
    for t in threads:
        t.start()
    unloads = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and unloads < 3:
        unloads += g.unload_if_idle(0)
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert unloads >= 1
    assert len(answers) == 2  # one Place for Lisbon, one key for Kehl, every time


def test_zone_polygons_are_dropped_when_idle() -> None:
    assert zones.zone_at(*LISBON) == "Europe/Lisbon"
    assert zones._finder is not None
    assert not zones.release_idle(3600)
    assert zones.release_idle(0)
    assert zones._finder is None
    assert zones.zone_at(*LISBON) == "Europe/Lisbon"


def test_unloading_hands_the_memory_back() -> None:
    code = (
        "from photovault.geo import places\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS'): return int(line.split()[1]) / 1024\n"
        "g = places.default_geocoder(); g.reverse(48.5725, 7.815)\n"
        "g.reverse(38.7, -9.1); g.place_keys_for('Lisbon')\n"  # warm the imports
        "assert places.release_idle(0)\n"
        "base = rss()\n"
        "g.reverse(48.5725, 7.815); g.place_keys_for('Lisbon')\n"
        "loaded = rss()\n"
        "assert places.release_idle(0)\n"
        "import sys\n"
        "print(base, loaded, rss(), 'scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *sizes, scipy_loaded = out.stdout.split()
    base, loaded, after = (float(v) for v in sizes)
    assert scipy_loaded == "False"  # k-d trees cost 39 MiB of imports for good (nearest.py)
    assert loaded - base > 40  # towns, zone polygons and the name index
    assert after - base < 0.25 * (loaded - base), (base, loaded, after)


@pytest.mark.parametrize("page_out", [True, False])
def test_the_daemon_unloads_place_data_after_the_models_idle_time(
    tmp_path: Path, page_out: bool
) -> None:
    extra = f"[models]\nidle_unload_seconds = 0.2\npage_out_at_rest = {str(page_out).lower()}\n"
    daemon = Daemon(load(write_config(tmp_path, extra=extra)))
    daemon.start()
    try:
        g = places.default_geocoder()
        assert g.reverse(*LISBON) is not None
        daemon.tick()
        time.sleep(0.3)
        page_cache = tmp_path / "mapped.bin"
        mapped = mapped_file(page_cache, mib=4)
        assert resident_kib(page_cache) >= 3 * 1024
        daemon.tick()
        assert not g.loaded
        assert zones._finder is None
        # At rest the process's clean file pages (library code, maps) are handed back
        # too, unless `page_out_at_rest` is off (a spinning system disk).
        if page_out:
            assert resident_kib(page_cache) < 1024
        else:
            assert resident_kib(page_cache) >= 3 * 1024
        mapped.close()
    finally:
        daemon.stop()


def test_place_rows_parse_in_chunks_as_one_array() -> None:
    rows = [
        {"country_code": "PT", "city": "a},{", "latitude": 1.5, "state": "x"},
        {"country_code": "DE", "city": 'b},{"c', "latitude": -2.0, "state": None},
        {"country_code": "FR", "city": "Saint-Étienne", "latitude": 45.4, "state": "ARA"},
    ] * 50
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    chunks = list(_row_chunks(text, chunk_chars=40))
    assert len(chunks) > 10  # small chunks: the cuts were found between rows only
    assert [r for chunk in chunks for r in chunk] == rows
    assert [r for chunk in _row_chunks(f" {text}\n") for r in chunk] == rows


def test_load_unload_cycles_do_not_grow_the_process() -> None:
    # Parsing all 155k rows at once left part of ~100 MiB of row dicts pinned:
    # ~1 MiB more per cycle in a bare process, ~2 in vaultd (bench/rss.py).
    code = (
        "from photovault.geo import places\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS'): return int(line.split()[1]) / 1024\n"
        "g = places.default_geocoder()\n"
        "sizes = []\n"
        "for _ in range(14):\n"
        "    g.reverse(48.5725, 7.815); places.release_idle(0); sizes.append(rss())\n"
        "print(sizes[3], sizes[-1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    settled, last = (float(v) for v in out.stdout.split())
    assert last - settled < 5, (settled, last)
