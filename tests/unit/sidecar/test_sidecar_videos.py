"""Sidecars of videos (#19): named like a photo's, same keywords, no face regions,
none for the video half of a live photo; a digiKam sidecar already there is merged."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from sidecar_helpers import FIXTURES, needs_tools

from helpers.videos import make_clip, solid
from photovault.catalog.store import Catalog
from photovault.config import Settings, ShareSettings
from photovault.config.sections import SidecarSettings
from photovault.sidecar.content import build_content
from photovault.sidecar.merge import merge
from photovault.sidecar.stage import SidecarStage

pytestmark = [
    needs_tools,
    pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is needed to make clips"),
]

FACE = {"id": 7, "box": [0.25, 0.2, 0.3, 0.4], "score": 0.98, "person": "Alice"}


def video_results(**metadata: Any) -> dict[str, Any]:
    """Stored results of a video: a tag, a face and a place; no width, height or orientation."""
    return {
        "metadata": {
            "kind": "video",
            "duration": 1.0,
            "place": {"country_code": "FR", "country": "France", "city": "Paris"},
            **metadata,
        },
        "tags": {"tags": [{"tag": "Animals|Dog", "confidence": 0.9, "source": "tags", "at": 0.5}]},
        "faces": {"faces": [{**FACE, "at": 0.4}], "model": "arcface"},
    }


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return make_clip(path, [(solid((40, 90, 200)), 1.0)], size=(96, 64), rotate=90).read_bytes()


def stage_for(tmp_path: Path, writer, clip: bytes, name: str, results, naming="ext"):
    """A sidecar stage over one share holding the clip `name`, analyzed with `results`."""
    share = tmp_path / "videos"
    share.mkdir(exist_ok=True)
    settings = Settings(
        state_dir=tmp_path / "state",
        shares=[ShareSettings(name="videos", path=share)],
        sidecars=SidecarSettings(naming=naming),
    )
    catalog = Catalog(settings.catalog_path)
    (share / name).write_bytes(clip)
    st = (share / name).stat()
    catalog.observe("videos", name, st.st_size, st.st_mtime_ns)
    (row,) = catalog.claim(1)
    catalog.store_content(
        hashlib.sha256(clip + name.encode()).hexdigest(),
        "metadata:1,tags:1,faces:1",
        {"orientation": 90},  # a rotation in degrees, not an EXIF orientation
        results,
        [(row.id, st.st_size, st.st_mtime_ns)],
    )
    stage = SidecarStage(catalog, settings, writer=writer, faces=lambda sha: [FACE])
    return stage, catalog, catalog.get_by_id(row.id), share


def test_a_video_sidecar_is_named_after_the_whole_file_and_holds_keywords_but_no_regions(
    tmp_path, writer, clip_bytes
):
    stage, catalog, row, share = stage_for(
        tmp_path, writer, clip_bytes, "clip.mp4", video_results()
    )
    assert stage.write_one(row) == "written"
    catalog.close()
    sidecar = share / "clip.mp4.xmp"
    (read,) = writer.read_json(sidecar)
    assert set(read["XMP-dc:Subject"]) == {"Dog", "Alice"}
    assert set(read["XMP-lr:HierarchicalSubject"]) == {"Animals|Dog", "People|Alice"}
    assert set(read["XMP-digiKam:TagsList"]) == {"Animals/Dog", "People/Alice"}
    assert read["XMP-photoshop:City"] == "Paris"
    assert "XMP-mwg-rs:RegionInfo" not in read and "XMP-MP:RegionInfoMP" not in read
    assert b"mwg-rs:Regions" not in sidecar.read_bytes()


def test_base_naming_gives_a_video_the_sidecar_named_after_its_stem(tmp_path, writer, clip_bytes):
    stage, catalog, row, share = stage_for(
        tmp_path, writer, clip_bytes, "clip.MOV", video_results(), naming="base"
    )
    assert stage.write_one(row) == "written"
    catalog.close()
    assert (share / "clip.xmp").is_file()
    assert not (share / "clip.MOV.xmp").exists()


def test_the_video_half_of_a_live_photo_gets_no_sidecar_of_its_own(tmp_path, writer, clip_bytes):
    results = video_results(live_photo_of="IMG_1.HEIC")
    stage, catalog, row, share = stage_for(
        tmp_path, writer, clip_bytes, "IMG_1.MOV", results, naming="base"
    )
    assert stage.write_one(row) == "empty"
    assert catalog.sidecar(row.id)["state"] == "empty"
    catalog.close()
    assert sorted(p.name for p in share.iterdir()) == ["IMG_1.MOV"]


def test_a_digikam_sidecar_of_a_video_keeps_everything_the_person_wrote(
    tmp_path, writer, clip_bytes
):
    stage, catalog, row, share = stage_for(
        tmp_path, writer, clip_bytes, "clip.mp4", video_results()
    )
    sidecar = share / "clip.mp4.xmp"
    shutil.copyfile(FIXTURES / "digikam-full-portrait.xmp", sidecar)
    (before,) = writer.read_json(sidecar)
    assert stage.write_one(row) == "written"
    catalog.close()
    (after,) = writer.read_json(sidecar)
    for tag, value in before.items():
        if tag.startswith(("System:", "File:", "ExifTool:", "XMP-photovault:", "SourceFile")):
            continue
        if tag in ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList"):
            assert set(value) <= set(after[tag]), tag
        else:
            assert after.get(tag) == value, tag  # the person's regions and fields stay
    assert "Dog" in after["XMP-dc:Subject"]


def test_the_merge_writes_no_region_for_a_video_and_leaves_the_files_regions_alone():
    photo = build_content({"metadata": {}}, [FACE], "faces:1")
    video = build_content(video_results(), [FACE], "faces:1")
    assert len(photo.faces) == 1 and video.faces == ()
    assert ("People", "Alice") in {k.path for k in video.keywords}
    assert b"mwg-rs:Regions" not in merge(None, video, (0, 0), 1).data
    # base naming: IMG_1.MP4 shares IMG_1.xmp with IMG_1.JPG, whose regions these are
    first = merge(None, photo, (64, 48), 1).data
    assert b"mwg-rs:Regions" in first and b"<photovault:FaceID>" in first
    again = merge(first, video.__class__(**{**video.__dict__, "faces": photo.faces}), (0, 0), 1)
    assert again.faces_written == 0
    assert b"mwg-rs:Regions" in again.data and b"<photovault:FaceID>" in again.data


def test_a_motion_photo_gets_its_face_regions_like_a_photo():
    content = build_content({"metadata": {"kind": "motion_photo"}}, [FACE], "faces:1")
    assert len(content.faces) == 1
    assert b"mwg-rs:Regions" in merge(None, content, (64, 48), 1).data
