"""Safe writes: atomic, concurrent changes merged, bad input untouched, photo untouched."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sidecar_helpers import FIXTURES, as_list, content, copy_fixture, exiftool_json, make_photo

from photovault.sidecar import writer as writer_mod
from photovault.sidecar.reader import read_sidecar
from photovault.sidecar.writer import SidecarWriter, exiftool_loss

DAEMON = Path(__file__).resolve().parents[3] / "daemon"


def _write(writer, folder: Path, **kw):
    photo = make_photo(folder)
    sidecar = folder / "IMG_1.jpg.xmp"
    return writer.write(photo, sidecar, content(**kw), (64, 48), 1), photo, sidecar


def test_new_sidecar_gets_the_photos_permission_bits_and_group(writer, tmp_path):
    result, photo, sidecar = _write(writer, tmp_path)
    assert result.status == "written"
    assert oct(sidecar.stat().st_mode & 0o777) == oct(photo.stat().st_mode & 0o777) == "0o640"
    assert sidecar.stat().st_gid == photo.stat().st_gid
    assert not [p for p in tmp_path.iterdir() if ".pvtmp-" in p.name]


def test_the_photo_itself_is_never_modified(writer, tmp_path):
    photo = make_photo(tmp_path)
    before = (photo.read_bytes(), photo.stat().st_mtime_ns)
    writer.write(photo, tmp_path / "IMG_1.jpg.xmp", content(), (64, 48), 1)
    assert (photo.read_bytes(), photo.stat().st_mtime_ns) == before
    with pytest.raises(ValueError):
        writer.write(photo, photo, content(), (64, 48), 1)


def test_fingerprint_describes_the_file_we_left(writer, tmp_path):
    result, _, sidecar = _write(writer, tmp_path)
    st = sidecar.stat()
    assert result.fingerprint is not None
    assert (result.fingerprint.mtime_ns, result.fingerprint.size) == (st.st_mtime_ns, st.st_size)
    assert result.fingerprint.sha256 == hashlib.sha256(sidecar.read_bytes()).hexdigest()
    assert read_sidecar(sidecar).fingerprint == result.fingerprint


class _Interfering(SidecarWriter):
    """Another program (real exiftool) adds a keyword just before we commit."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def _before_commit(self, sidecar: Path) -> None:
        if self.times > 0:
            self.times -= 1
            subprocess.run(
                [
                    "exiftool",
                    "-q",
                    "-overwrite_original",
                    f"-XMP-dc:Subject+=Person{self.times}",
                    str(sidecar),
                ],
                check=True,
            )


def test_a_change_made_between_read_and_write_is_merged_not_overwritten(tmp_path):
    photo = make_photo(tmp_path)
    sidecar = copy_fixture("lightroom61-IMG_5910.jpg.xmp", tmp_path, "IMG_1.jpg.xmp")
    with _Interfering(times=1) as w:
        result = w.write(photo, sidecar, content(), (64, 48), 1)
        subjects = as_list(exiftool_json(w, sidecar)["XMP-dc:Subject"])
    assert result.status == "written" and result.attempts == 2
    assert "Person0" in subjects and "Dog" in subjects and "Alvin the Squirrel" in subjects


def test_a_sidecar_that_keeps_changing_is_given_up_without_overwriting(tmp_path):
    photo = make_photo(tmp_path)
    sidecar = copy_fixture("lightroom61-IMG_5910.jpg.xmp", tmp_path, "IMG_1.jpg.xmp")
    with _Interfering(times=10) as w:
        result = w.write(photo, sidecar, content(), (64, 48), 1)
        subjects = as_list(exiftool_json(w, sidecar)["XMP-dc:Subject"])
    assert result.status == "failed" and "kept changing" in result.warnings[0]
    assert "Dog" not in subjects and "Person7" in subjects


def test_a_sidecar_created_meanwhile_by_another_program_is_merged(tmp_path):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"

    class Creating(SidecarWriter):
        done = False

        def _before_commit(self, path: Path) -> None:
            if not self.done:
                self.done = True
                path.write_bytes((FIXTURES / "microsoft-mp-regions.xmp").read_bytes())

    with Creating() as w:
        result = w.write(photo, sidecar, content(), (64, 48), 1)
    faces = [f.name for f in read_sidecar(sidecar).faces]
    assert result.attempts == 2 and "Cara" in faces and "Zoë Ångström" in faces


def test_a_failure_before_the_rename_leaves_the_old_file_and_no_temp(writer, tmp_path, monkeypatch):
    photo = make_photo(tmp_path)
    sidecar = copy_fixture("digikam-full-portrait.xmp", tmp_path, "IMG_1.jpg.xmp")
    old = sidecar.read_bytes()

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(writer_mod.os, "fsync", broken_fsync)
    result = writer.write(photo, sidecar, content(), (64, 48), 1)
    assert result.status == "failed" and "I/O error" in result.warnings[0]
    assert sidecar.read_bytes() == old
    assert not [p for p in tmp_path.iterdir() if ".pvtmp-" in p.name]


CRASH_LOOP = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from photovault.sidecar.model import Keyword, SidecarContent
from photovault.sidecar.writer import SidecarWriter
folder = Path(sys.argv[2])
with SidecarWriter(verify_with_exiftool=False) as w:
    i = 0
    while True:
        i += 1
        kws = tuple(Keyword(("Loop", f"k{i}-{j}")) for j in range(200))
        w.write(folder / "IMG_1.jpg", folder / "IMG_1.jpg.xmp",
                SidecarContent(keywords=kws, analyzed_at=str(i)), (64, 48), 1)
        print(i, flush=True)
"""


def test_a_crash_in_the_middle_of_writes_leaves_a_whole_file(writer, tmp_path):
    make_photo(tmp_path)
    sidecar = copy_fixture("darktable-bibble-_27A1417.CR2.xmp", tmp_path, "IMG_1.jpg.xmp")
    for delay in (0.35, 0.5, 0.65):
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASH_LOOP, str(DAEMON), str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one write done
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        result = read_sidecar(sidecar)
        assert result.ok, result.problem
        ours = [k for k in result.keywords if k.ours]
        assert len(ours) == 200  # a whole version, never a partial one
        assert "darktable" in sidecar.read_text()  # foreign data still there


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF>", "malformed XML"),
        (
            (FIXTURES / "microsoft-mp-regions.xmp")
            .read_text()
            .replace("<?xpacket begin=''", "<?xpacket begin='\ufeff'")
            .encode("utf-16"),
            "UTF-16",
        ),
        (b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY e 'x'>]><r>&e;</r>", "DOCTYPE"),
        (
            b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
            b"xmlns:dc='http://purl.org/dc/elements/1.1/'>"
            b"<rdf:Description dc:subject='flat text'/></rdf:RDF>",
            "attribute",
        ),
        (
            b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
            b"xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'>"
            b"<rdf:Description><mwg-rs:Regions>odd</mwg-rs:Regions>"
            b"</rdf:Description></rdf:RDF>",
            "Regions",
        ),
    ],
)
def test_bad_sidecars_are_left_untouched_with_a_warning(writer, tmp_path, data, expected):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    sidecar.write_bytes(data)
    result = writer.write(photo, sidecar, content(), (64, 48), 1)
    assert result.status == "skipped"
    assert expected in result.warnings[0]
    assert sidecar.read_bytes() == data


def test_a_huge_sidecar_is_left_untouched(tmp_path):
    photo = make_photo(tmp_path)
    sidecar = copy_fixture("lightroom61-IMG_5910.jpg.xmp", tmp_path, "IMG_1.jpg.xmp")
    old = sidecar.read_bytes()
    with SidecarWriter(max_bytes=4096) as w:
        result = w.write(photo, sidecar, content(), (64, 48), 1)
    assert result.status == "skipped" and "limit" in result.warnings[0]
    assert sidecar.read_bytes() == old


def test_utf8_bom_sidecar_is_merged_and_keeps_its_bom(writer, tmp_path):
    photo = make_photo(tmp_path)
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    sidecar.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "microsoft-mp-regions.xmp").read_bytes())
    assert writer.write(photo, sidecar, content(), (64, 48), 1).status == "written"
    assert sidecar.read_bytes().startswith(b"\xef\xbb\xbf<?xpacket")
    assert {"Cara", "Zoë Ångström"} <= {f.name for f in read_sidecar(sidecar).faces}


def test_read_only_share_sidecar_is_written_into_the_mirror_tree(writer, tmp_path):
    share = tmp_path / "share" / "2024"
    share.mkdir(parents=True)
    photo = make_photo(share)
    share.chmod(0o555)
    try:
        sidecar = tmp_path / "state" / "mirror" / "2024" / "IMG_1.jpg.xmp"
        result = writer.write(photo, sidecar, content(), (64, 48), 1)
        assert result.status == "written" and sidecar.exists()
        assert sorted(p.name for p in share.iterdir()) == ["IMG_1.jpg"]
    finally:
        share.chmod(0o755)


@pytest.mark.filterwarnings("ignore:ExifTool process was previously running:UserWarning")
def test_exiftool_is_restarted_after_it_dies(tmp_path):
    photo = make_photo(tmp_path)
    with SidecarWriter() as w:
        assert w.write(photo, tmp_path / "a.xmp", content(), (64, 48), 1).status == "written"
        w._et._process.kill()
        w._et._process.wait()
        assert w.write(photo, tmp_path / "b.xmp", content(), (64, 48), 1).status == "written"


def test_stale_temp_files_from_a_crash_are_removed(writer, tmp_path):
    photo = make_photo(tmp_path)
    stale = tmp_path / ".IMG_1.jpg.xmp.pvtmp-deadbeef0123.xmp"
    stale.write_text("partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    writer.write(photo, tmp_path / "IMG_1.jpg.xmp", content(), (64, 48), 1)
    assert not stale.exists()


def test_exiftool_check_reports_a_lost_or_changed_foreign_tag():
    before = {
        "XMP-dc:Title": "A",
        "XMP-dc:Subject": ["x", "ours"],
        "XMP-mwg-rs:RegionInfo": {"RegionList": [{"Name": "P"}]},
    }
    assert (
        exiftool_loss(
            before, dict(before, **{"XMP-dc:Subject": ["x"]}), {"XMP-dc:Subject": ["ours"]}
        )
        is None
    )
    assert "Title" in exiftool_loss(
        before, {k: v for k, v in before.items() if k != "XMP-dc:Title"}
    )
    assert "lost" in exiftool_loss(before, dict(before, **{"XMP-dc:Subject": ["ours"]}))
    changed = dict(before, **{"XMP-mwg-rs:RegionInfo": {"RegionList": [{"Name": "Q"}]}})
    assert "RegionList" in exiftool_loss(before, changed)
