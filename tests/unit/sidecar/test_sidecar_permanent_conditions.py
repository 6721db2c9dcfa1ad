"""A sidecar that can never be written where it is: skipped with the reason, not a fault.

A folder in the sidecar's place, a path that runs through a file or loops through
links, a path longer than the system allows (even in the mirror tree): retrying
cannot help, so the sidecar is recorded as skipped with a warning naming the file,
not as a failure that keeps the "sidecars" problem (and `vaultctl status` exit 1)
up for ever. A path too long beside the photo first goes to the mirror tree.
Real catalog, real exiftool, real files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sidecar_helpers import content, make_photo, needs_tools

from photovault.catalog.store import Catalog, FileRow
from photovault.config import Settings, ShareSettings
from photovault.problems import Problems
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.stage import RETRY_SECONDS, SidecarStage

pytestmark = needs_tools

PATH_MAX = 4096
#: How much longer than a sidecar's name the writer's temp file name is.
TEMP_EXTRA = len(".") + len(".pvtmp-") + 12 + len(".xmp")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_env(share: Path, state: Path, *, read_only: bool = False):
    share.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        state_dir=state, shares=[ShareSettings(name="photos", path=share, read_only=read_only)]
    )
    clock = Clock()
    return settings, Catalog(settings.catalog_path, clock=clock), clock


def catalogued(catalog: Catalog, share: Path, relpath: str) -> FileRow:
    """A photo on the share, analysed and done in the catalog with one keyword."""
    photo = make_photo(share, relpath)
    st = photo.stat()
    catalog.observe("photos", relpath, st.st_size, st.st_mtime_ns)
    (row,) = catalog.claim(1)
    catalog.store_content(
        hashlib.sha256(photo.read_bytes() + relpath.encode()).hexdigest(),
        "tags:1",
        {"width": 64, "height": 48, "orientation": 1},
        {"tags": {"tags": [{"tag": "Animals|Dog", "confidence": 0.9, "source": "tags"}]}},
        [(row.id, st.st_size, st.st_mtime_ns)],
    )
    got = catalog.get("photos", relpath)
    assert got is not None
    return got


def long_relpath(share: Path, total: int) -> str:
    """A relative photo path under `share` whose full path is `total` bytes."""
    base = len(os.fsencode(share)) + 1
    parts = []
    while base + 201 + 60 < total:
        parts.append("d" * 200)
        base += 201
    os.makedirs(share.joinpath(*parts), exist_ok=True)
    name = "p" * (total - base - len(".jpg")) + ".jpg"
    rel = "/".join([*parts, name])
    assert len(os.fsencode(share / rel)) == total
    return rel


def assert_no_problem_and_not_retried(stage: SidecarStage, catalog: Catalog, clock: Clock):
    problems = stage.problems
    assert problems is not None
    stage._refresh_problems(force=True)
    assert not problems.active("sidecars")
    clock.now += RETRY_SECONDS + 1
    assert catalog.sidecar_work(10) == []


def test_a_folder_where_the_sidecar_would_go_is_skipped_with_a_warning_not_a_problem(tmp_path):
    share = tmp_path / "photos"
    settings, catalog, clock = make_env(share, tmp_path / "state")
    row = catalogued(catalog, share, "dir.jpg")
    (share / "dir.jpg.xmp").mkdir()
    stage = SidecarStage(catalog, settings, problems=Problems(), clock=clock)
    try:
        assert stage.write_one(row) == "skipped"
    finally:
        stage.writer.close()
    record = catalog.sidecar(row.id)
    assert record["state"] == "skipped"
    assert "dir.jpg.xmp is a folder" in record["warning"]
    assert (share / "dir.jpg.xmp").is_dir()
    assert_no_problem_and_not_retried(stage, catalog, clock)
    catalog.close()


def test_a_sidecar_path_too_long_beside_the_photo_is_kept_in_the_mirror_tree(tmp_path):
    share = tmp_path / ("share-" + "s" * 200) / "photos"  # longer than the state dir
    settings, catalog, clock = make_env(share, tmp_path / "st")
    rel = long_relpath(share, PATH_MAX - 10)  # NAME.xmp beside it: over PATH_MAX
    row = catalogued(catalog, share, rel)
    stage = SidecarStage(catalog, settings, problems=Problems(), clock=clock)
    try:
        assert stage.write_one(row) == "written"
    finally:
        stage.writer.close()
    record = catalog.sidecar(row.id)
    mirrored = Path(record["path"])
    assert mirrored == settings.sidecar_mirror / "photos" / f"{rel}.xmp"
    assert "too long" in record["warning"] and "mirror tree" in record["warning"]
    assert stage.path_for(row) == mirrored  # `vaultctl sidecar` / show find it again
    assert {"|".join(k.path) for k in read_sidecar(mirrored).keywords} == {"Animals|Dog"}
    assert_no_problem_and_not_retried(stage, catalog, clock)
    catalog.close()


def test_a_path_too_long_even_for_the_mirror_tree_is_skipped_with_the_reason(tmp_path):
    share = tmp_path / "photos"
    settings, catalog, clock = make_env(share, tmp_path / ("state-" + "t" * 200))
    rel = long_relpath(share, PATH_MAX - TEMP_EXTRA - 3)  # beside: too long by a few bytes
    row = catalogued(catalog, share, rel)
    stage = SidecarStage(catalog, settings, problems=Problems(), clock=clock)
    try:
        assert stage.write_one(row) == "skipped"
    finally:
        stage.writer.close()
    record = catalog.sidecar(row.id)
    assert record["state"] == "skipped"
    assert "File name too long" in record["warning"]
    assert f"{rel.rsplit('/', 1)[1]}.xmp cannot be written" in record["warning"]
    assert not [p for p in share.rglob("*") if p.name.endswith(".xmp")]
    assert_no_problem_and_not_retried(stage, catalog, clock)
    catalog.close()


def test_a_file_in_the_way_of_the_mirror_folder_skips_the_sidecar(tmp_path):
    share = tmp_path / "photos"
    settings, catalog, clock = make_env(share, tmp_path / "state", read_only=True)
    (share / "2024").mkdir()
    row = catalogued(catalog, share, "2024/b.jpg")
    settings.sidecar_mirror.mkdir(parents=True)
    (settings.sidecar_mirror / "photos").write_text("not a folder")
    stage = SidecarStage(catalog, settings, problems=Problems(), clock=clock)
    try:
        assert stage.write_one(row) == "skipped"
    finally:
        stage.writer.close()
    record = catalog.sidecar(row.id)
    assert "b.jpg.xmp cannot be written: Not a directory" in record["warning"]
    assert_no_problem_and_not_retried(stage, catalog, clock)
    catalog.close()


@pytest.mark.parametrize("case", ["file in the path", "link loop"])
def test_the_writer_skips_a_sidecar_whose_path_cannot_exist(tmp_path, writer, case):
    photo = make_photo(tmp_path)
    if case == "file in the path":
        (tmp_path / "notes.txt").write_text("x")
        sidecar = tmp_path / "notes.txt" / "IMG_1.jpg.xmp"
    else:
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        sidecar = tmp_path / "loop" / "IMG_1.jpg.xmp"
    result = writer.write(photo, sidecar, content(faces=()), (64, 48), 1)
    assert result.status == "skipped"
    assert result.warnings and "IMG_1.jpg.xmp" in result.warnings[0]
