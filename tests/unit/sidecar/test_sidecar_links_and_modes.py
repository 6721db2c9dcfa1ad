"""A sidecar never leaks what a link points at, nor more than its photo lets anyone read."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from sidecar_helpers import FIXTURES, content, copy_fixture, make_photo

from photovault.catalog.store import Catalog
from photovault.config import Settings, ShareSettings
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.stage import SidecarStage

SECRET = "PIN-4711-only-root-may-read-this"


def private_xmp(folder: Path) -> Path:
    """A valid XMP sidecar only its owner can read, holding a secret keyword."""
    folder.mkdir(exist_ok=True)
    target = folder / "secret.xmp"
    text = (FIXTURES / "lightroom61-IMG_5910.jpg.xmp").read_text()
    target.write_text(text.replace("Alvin the Squirrel", SECRET))
    assert SECRET in target.read_text()
    target.chmod(0o600)
    return target


def leaked(root: Path) -> list[Path]:
    """Regular files under `root` (links not followed) that hold the secret."""
    out = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            if SECRET.encode() in path.read_bytes():
                out.append(path)
    return out


@pytest.fixture
def linked(tmp_path: Path):
    """share/car.jpg with car.jpg.xmp linked to a root-only file outside the share."""
    share = tmp_path / "share"
    share.mkdir()
    photo = make_photo(share, "car.jpg", mode=0o644)
    target = private_xmp(tmp_path / "private")
    link = share / "car.jpg.xmp"
    link.symlink_to(target)
    before = _state(target)
    yield photo, link, target, before
    # Whatever the test did: the link is still the same link, its target untouched.
    assert link.is_symlink() and os.readlink(link) == os.fspath(target)
    assert _state(target) == before


def _state(path: Path) -> tuple:
    st = path.stat()
    return path.read_bytes(), st.st_mode, st.st_mtime_ns, st.st_ino


def test_a_symlinked_sidecar_is_never_followed_nor_replaced(writer, linked):
    photo, link, target, before = linked
    result = writer.write(photo, link, content(), (64, 48), 1)
    assert result.status == "skipped"
    assert "car.jpg.xmp is a symbolic link" in result.warnings[0]
    assert link.is_symlink() and _state(target) == before
    assert leaked(photo.parent) == []
    assert SECRET not in repr(result)


def test_reading_a_symlinked_sidecar_refuses_it_with_a_warning_naming_it(linked):
    _photo, link, _target, _before = linked
    result = read_sidecar(link)
    assert not result.ok and "car.jpg.xmp is a symbolic link" in (result.problem or "")
    assert result.keywords == [] and SECRET not in repr(result)


def test_the_stage_records_the_refusal_and_never_imports_what_the_link_points_at(
    writer, linked, tmp_path
):
    photo, _link, _target, _before = linked
    share = photo.parent
    settings = Settings(
        state_dir=tmp_path / "state", shares=[ShareSettings(name="photos", path=share)]
    )
    catalog = Catalog(settings.catalog_path)
    try:
        st = photo.stat()
        catalog.observe("photos", "car.jpg", st.st_size, st.st_mtime_ns)
        (row,) = catalog.claim(1)
        sha = hashlib.sha256(photo.read_bytes()).hexdigest()
        catalog.store_content(
            sha,
            "tags:1",
            {"width": 64, "height": 48, "orientation": 1},
            {"tags": {"tags": [{"tag": "Vehicles|Car", "confidence": 0.9, "source": "tags"}]}},
            [(row.id, st.st_size, st.st_mtime_ns)],
        )
        row = catalog.get_by_id(row.id)
        stage = SidecarStage(catalog, settings, writer=writer)
        stage.sidecar_changed("photos", "car.jpg.xmp")  # the watcher saw the link appear
        stage._read_back_changed()
        assert stage.import_share(None) == 1
        assert stage.write_one(row) == "skipped"
        record = catalog.sidecar(row.id)
        assert record["state"] == "skipped"
        assert "car.jpg.xmp is a symbolic link" in record["warning"]
        assert SECRET not in repr(record)
        assert [w for _i, _p, w in catalog.sidecar_warnings() if "symbolic link" in w]
    finally:
        catalog.close()
    assert leaked(tmp_path / "state") == [] and leaked(share) == []


def _finishes(fn, timeout: float = 5.0):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert out, "blocked on a sidecar that is not a regular file"
    return out[0]


def test_a_fifo_where_the_sidecar_should_be_neither_blocks_nor_is_replaced(writer, tmp_path):
    photo = make_photo(tmp_path, "IMG_1.jpg")
    fifo = tmp_path / "IMG_1.jpg.xmp"
    os.mkfifo(fifo)
    assert "not a regular file" in (_finishes(lambda: read_sidecar(fifo)).problem or "")
    result = _finishes(lambda: writer.write(photo, fifo, content(), (64, 48), 1))
    assert result.status == "skipped" and "not a regular file" in result.warnings[0]
    assert fifo.is_fifo()


@pytest.mark.parametrize(
    ("photo_mode", "expected"), [(0o600, 0o600), (0o755, 0o644), (0o640, 0o640), (0o4755, 0o644)]
)
def test_a_new_sidecar_is_never_more_permissive_than_its_photo(
    writer, tmp_path, photo_mode, expected
):
    photo = make_photo(tmp_path, mode=photo_mode)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    assert writer.write(photo, sidecar, content(), (64, 48), 1).status == "written"
    assert oct(sidecar.stat().st_mode & 0o7777) == oct(expected)
    assert sidecar.stat().st_gid == photo.stat().st_gid


@pytest.mark.parametrize(
    ("sidecar_mode", "photo_mode", "expected"),
    [(0o600, 0o644, 0o600), (0o666, 0o640, 0o662), (0o644, 0o600, 0o600), (0o664, 0o664, 0o664)],
)
def test_an_existing_sidecar_keeps_its_mode_but_never_reads_wider_than_its_photo(
    writer, tmp_path, sidecar_mode, photo_mode, expected
):
    photo = make_photo(tmp_path, mode=photo_mode)
    sidecar = copy_fixture("digikam-full-portrait.xmp", tmp_path, "IMG_1.jpg.xmp")
    sidecar.chmod(sidecar_mode)
    assert writer.write(photo, sidecar, content(), (64, 48), 1).status == "written"
    assert oct(sidecar.stat().st_mode & 0o7777) == oct(expected)
    assert not [p for p in tmp_path.iterdir() if ".pvtmp-" in p.name]
