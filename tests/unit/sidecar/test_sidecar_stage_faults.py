"""The sidecar stage under faults: one photo's error stays with that photo.

Real catalog (SQLite), real writer (exiftool), real files; the stage thread runs
where the behaviour is "the loop goes on".
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sidecar_helpers import exiftool_json, make_photo

from photovault.catalog.store import Catalog, FileRow
from photovault.config import Settings, ShareSettings
from photovault.problems import Problems
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.stage import SidecarStage
from photovault.sidecar.writer import SidecarWriter

NAME_MAX = 255
LONG_NAME = "x" * (NAME_MAX - len(".jpg")) + ".jpg"  # 255 bytes: NAME.xmp cannot exist


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path: Path):
    share = tmp_path / "photos"
    share.mkdir()
    settings = Settings(
        state_dir=tmp_path / "state", shares=[ShareSettings(name="photos", path=share)]
    )
    clock = Clock()
    catalog = Catalog(settings.catalog_path, clock=clock)
    yield share, settings, catalog, clock
    catalog.close()


def catalogued(
    catalog: Catalog, share: Path, name: str, tags=("Animals|Dog",), mode: int = 0o640
) -> FileRow:
    """A photo on the share, analysed and done in the catalog with these tags."""
    photo = make_photo(share, name, mode=mode)
    st = photo.stat()
    catalog.observe("photos", name, st.st_size, st.st_mtime_ns)
    (row,) = catalog.claim(1)
    sha = hashlib.sha256(photo.read_bytes() + name.encode()).hexdigest()
    catalog.store_content(
        sha,
        "tags:1",
        {"width": 64, "height": 48, "orientation": 1},
        {"tags": {"tags": [{"tag": t, "confidence": 0.9, "source": "tags"} for t in tags]}},
        [(row.id, st.st_size, st.st_mtime_ns)],
    )
    got = catalog.get("photos", name)
    assert got is not None
    return got


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s")


def subjects(path: Path) -> set[str]:
    return {"|".join(k.path) for k in read_sidecar(path).keywords}


def test_a_name_too_long_for_its_sidecar_gets_one_in_the_mirror_and_never_blocks_the_others(
    env,
):
    share, settings, catalog, _clock = env
    long_row = catalogued(catalog, share, LONG_NAME)  # lowest id: first in every batch
    later = [catalogued(catalog, share, f"IMG_{i}.jpg") for i in range(3)]
    stage = SidecarStage(catalog, settings, writer=SidecarWriter())
    stage.start()
    try:
        wait(lambda: not catalog.sidecar_work(100), 20, "every photo handled")
    finally:
        stage.stop()
    for row in later:
        assert catalog.sidecar(row.id)["state"] == "written"
        assert "Animals|Dog" in subjects(share / f"{row.relpath}.xmp")
    record = catalog.sidecar(long_row.id)
    assert record["state"] == "written"
    assert "259 bytes" in record["warning"] and "mirror" in record["warning"]
    mirrored = Path(record["path"])
    assert mirrored.parent == settings.sidecar_mirror / "photos"
    assert len(os.fsencode(mirrored.name)) <= NAME_MAX
    assert stage.path_for(long_row) == mirrored  # `vaultctl sidecar` / show find it
    assert "Animals|Dog" in subjects(mirrored)
    assert sorted(p.name for p in share.iterdir() if p.suffix == ".xmp") == [
        f"IMG_{i}.jpg.xmp" for i in range(3)
    ]


def test_a_250_byte_name_keeps_its_sidecar_beside_the_photo(env, writer):
    share, settings, catalog, _clock = env
    name = "y" * 246 + ".jpg"  # NAME.xmp is 254 bytes: fits, its temp file would not
    row = catalogued(catalog, share, name)
    stage = SidecarStage(catalog, settings, writer=writer)
    assert stage.write_one(row) == "written"
    assert catalog.sidecar(row.id)["state"] == "written"
    assert "Animals|Dog" in subjects(share / f"{name}.xmp")
    assert not [p for p in share.iterdir() if ".pvtmp-" in p.name]


def test_a_photo_that_fails_is_recorded_with_its_reason_and_the_later_ones_still_get_sidecars(
    env,
):
    share, settings, catalog, clock = env
    bad = catalogued(catalog, share, "bad.jpg")
    good = [catalogued(catalog, share, f"ok{i}.jpg") for i in range(2)]
    broken = {bad.sha256}

    def faces(sha: str) -> list:
        if sha in broken:
            raise RuntimeError("people store says no")
        return []

    problems = Problems()
    stage = SidecarStage(catalog, settings, writer=SidecarWriter(), faces=faces, problems=problems)
    stage.start()
    try:
        wait(
            lambda: all((catalog.sidecar(r.id) or {}).get("state") == "written" for r in good),
            20,
            "the photos after the failing one written",
        )
        wait(lambda: problems.active("sidecars"), 10, "the failure reported")
    finally:
        stage.stop()
    record = catalog.sidecar(bad.id)
    assert record["state"] == "failed"
    assert record["warning"] == "RuntimeError: people store says no"
    (problem,) = [p for p in problems.snapshot() if p.kind == "sidecars"]
    assert problem.count == 1 and "people store says no" in problem.message
    assert catalog.sidecar_work(10) == []  # not picked again at once

    broken.clear()  # the cause goes away; the retry writes it and clears the problem
    clock.now += 601
    assert [r.id for r in catalog.sidecar_work(10)] == [bad.id]
    stage = SidecarStage(catalog, settings, writer=SidecarWriter(), faces=faces, problems=problems)
    stage.start()
    try:
        wait(lambda: not problems.active("sidecars"), 20, "the problem cleared")
    finally:
        stage.stop()
    assert catalog.sidecar(bad.id)["state"] == "written"


def test_new_work_comes_before_retries_of_failed_sidecars(env):
    share, _settings, catalog, clock = env
    rows = [catalogued(catalog, share, f"p{i}.jpg") for i in range(3)]
    catalog.record_sidecar(rows[0].id, "failed", None, warning="x")
    clock.now += 601
    assert [r.id for r in catalog.sidecar_work(10)] == [rows[1].id, rows[2].id, rows[0].id]


def test_stale_temp_files_are_removed_at_start_and_an_interrupted_write_is_redone(env, tmp_path):
    share, settings, catalog, _clock = env
    row = catalogued(catalog, share, "IMG_1.jpg")
    # A previous run wrote the sidecar, then died before recording it.
    with SidecarWriter() as w:
        stage = SidecarStage(catalog, settings, writer=w)
        assert stage.write_one(row) == "written"
    catalog.reset_sidecars(None)
    sidecar = share / "IMG_1.jpg.xmp"
    sub = share / "2024"
    sub.mkdir()
    mirror = settings.sidecar_mirror / "photos" / "deep"
    mirror.mkdir(parents=True)
    ours = [
        share / ".IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp",
        sub / ".b.jpg.XMP.pvtmp-ffffffffffff.xmp",
        share / f".{'0' * 16}.xmp.pvtmp-abcdef012345.xmp",  # a hashed (long name) temp
        mirror / ".c.jpg.xmp.pvtmp-aaaaaaaaaaaa.xmp",
    ]
    outside = tmp_path / "outside"
    outside.mkdir()
    theirs = [
        share / ".IMG_1.jpg.xmp.pvtmp-notes.xmp",
        share / "IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp",
        share / ".IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp.bak",
        share / ".IMG_1.jpg.xmp.pvtmp-0123456789AB.xmp",
        share / ".pvtmp-0123456789ab.xmp",
        outside / ".d.jpg.xmp.pvtmp-bbbbbbbbbbbb.xmp",  # reachable only through a link
    ]
    for path in ours + theirs:
        path.write_text("partial")
    (share / "linked").symlink_to(outside)
    link = share / ".e.jpg.xmp.pvtmp-cccccccccccc.xmp"
    link.symlink_to(outside / ".d.jpg.xmp.pvtmp-bbbbbbbbbbbb.xmp")

    stage = SidecarStage(catalog, settings, writer=SidecarWriter())
    stage.start()
    try:
        wait(
            lambda: (catalog.sidecar(row.id) or {}).get("state") in ("written", "unchanged"),
            20,
            "the interrupted sidecar picked again",
        )
    finally:
        stage.stop()
    assert stage.temps_removed == len(ours)
    assert [p for p in ours if os.path.lexists(p)] == []
    assert all(p.read_text() == "partial" for p in theirs)
    assert link.is_symlink()
    assert read_sidecar(sidecar).ok  # the old file was whole; our keyword is not doubled
    assert exiftool_json_subjects(sidecar).count("Dog") == 1


def exiftool_json_subjects(path: Path) -> list[str]:
    with SidecarWriter() as w:
        value = exiftool_json(w, path).get("XMP-dc:Subject")
    return value if isinstance(value, list) else [value]
