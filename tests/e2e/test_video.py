"""Videos end to end: real vaultd, real ffmpeg-made clips, the real tagger.

A clip of three scenes made from real photos (a cat, a coffee, a camera) gets the tag
of each scene with a time inside that scene, and search by tag returns the clip with
that moment; a rotated phone clip has its duration, capture date, GPS, place and
portrait size; a truncated clip is quarantined with a reason; a Google motion photo
is analyzed as its still; an Apple live photo is one item; the clip gets a sidecar
that exiftool reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from skimage import data

from helpers.vault import VaultProcess, write_config
from helpers.videos import make_clip, solid

#: (scene, seconds, tag the real tagger gives it); a black second first, as cameras record.
SCENES = (
    (data.chelsea, 4.0, "Animals|Cat"),
    (data.coffee, 4.0, "Food|Drink"),
    (data.camera, 4.0, "Objects|Camera"),
)
INTRO = 1.0
CONTENT_ID = "5C1D7A8E-2B9F-4E61-9D0A-7F3E2C1B4A55"
FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
#: The face clip: a coffee until FACE_AT[0] seconds, then a portrait until FACE_AT[1].
FACE_AT = (3.0, 6.0)


def scene_span(index: int) -> tuple[float, float]:
    start = INTRO + sum(s for _f, s, _t in SCENES[:index])
    return start, start + SCENES[index][1]


def motion_photo(path: Path, still: Image.Image, clip: Path) -> Path:
    """A Google motion photo: a JPEG whose XMP says MotionPhoto=1 and names the MP4
    appended after the JPEG's end (Container:Directory, as the Camera app writes)."""
    import io

    video = clip.read_bytes()
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"'
        ' xmlns:Container="http://ns.google.com/photos/1.0/container/"'
        ' xmlns:Item="http://ns.google.com/photos/1.0/container/item/"'
        ' GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"'
        ' GCamera:MotionPhotoPresentationTimestampUs="0"><Container:Directory><rdf:Seq>'
        '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg"'
        ' Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/></rdf:li>'
        f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4"'
        f' Item:Semantic="MotionPhoto" Item:Length="{len(video)}" Item:Padding="0"/></rdf:li>'
        "</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    still.save(buf, "JPEG", quality=90, xmp=xmp.encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue() + video)
    return path


@pytest.fixture(scope="module")
def video_vault(tmp_path_factory: pytest.TempPathFactory, real_tagger_store: Path):
    base = tmp_path_factory.mktemp("video")
    photos = base / "photos"
    scenes: list[tuple[Any, float]] = [(solid(), INTRO)]
    scenes += [(f(), s) for f, s, _t in SCENES]
    make_clip(photos / "clips" / "three_scenes.mp4", scenes, size=(640, 360))
    make_clip(
        photos / "phone" / "VID_20240601_140000.mp4",
        [(data.astronaut(), 3.0)],
        size=(640, 360),
        rotate=90,
        creation_time="2024-06-01T12:00:00Z",
        gps=(48.8584, 2.2945),
    )
    broken = (photos / "clips" / "three_scenes.mp4").read_bytes()
    (photos / "broken").mkdir()
    (photos / "broken" / "cut.mp4").write_bytes(broken[: len(broken) // 2])
    teaser = make_clip(base / "teaser.mp4", [(data.chelsea(), 1.5)], size=(320, 240))
    motion_photo(photos / "motion" / "PXL_20240601_MP.jpg", Image.fromarray(data.chelsea()), teaser)
    (photos / "live").mkdir()
    Image.fromarray(data.coffee()).save(photos / "live" / "IMG_0001.JPG", quality=90)
    make_clip(
        photos / "live" / "IMG_0001.MOV",
        [(data.coffee(), 2.5)],
        size=(480, 360),
        keys={
            "com.apple.quicktime.content.identifier": CONTENT_ID,
            "com.apple.quicktime.make": "Apple",
        },
    )
    make_clip(
        photos / "people" / "speech.mp4",
        [(data.coffee(), FACE_AT[0]), (FACES / "obama.jpg", FACE_AT[1] - FACE_AT[0])],
        size=(960, 540),
        rotate=90,  # held upright: the portrait is the right way up only after the turn
    )
    shutil.copytree(real_tagger_store, base / "state" / "models")
    config = write_config(base, analyzers=["metadata", "tagger", "faces"])
    vault = VaultProcess(config, base)
    vault.start()
    vault.wait_idle(expect_done=6, timeout=300)
    yield vault, photos
    vault.stop()


def search(vault: VaultProcess, *args: str) -> list[dict[str, Any]]:
    r = vault.ctl("search", *args, "--json", check=False)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout) if r.returncode == 0 else []


def test_each_scene_gets_its_tag_with_a_time_inside_that_scene(video_vault) -> None:
    vault, photos = video_vault
    shown = vault.show(photos / "clips" / "three_scenes.mp4")
    assert shown["state"] == "done" and shown["kind"] == "video", shown
    assert shown["duration"] == pytest.approx(INTRO + 12.0, abs=0.2)
    tags = {t["tag"]: t for t in shown["tags"]}
    for i, (_f, _s, tag) in enumerate(SCENES):
        start, end = scene_span(i)
        assert tag in tags, (tag, sorted(tags))
        assert start <= tags[tag]["at"] < end, (tag, tags[tag]["at"], (start, end))


def test_search_by_tag_returns_the_clip_with_the_moment(video_vault) -> None:
    vault, _photos = video_vault
    for i, (_f, _s, tag) in enumerate(SCENES):
        word = tag.split("|")[-1].lower()
        hits = [h for h in search(vault, "--tag", word) if h["path"].endswith("three_scenes.mp4")]
        assert hits, word
        start, end = scene_span(i)
        assert start <= hits[0]["at"] < end, (word, hits[0])
    human = vault.ctl("search", "--tag", "cat").stdout
    assert "three_scenes.mp4 @ 0:0" in human, human


def test_a_rotated_phone_clip_has_its_date_place_duration_and_portrait_size(video_vault) -> None:
    vault, photos = video_vault
    shown = vault.show(photos / "phone" / "VID_20240601_140000.mp4")
    assert shown["kind"] == "video" and shown["duration"] == pytest.approx(3.0, abs=0.2)
    assert (shown["width"], shown["height"]) == (360, 640)
    assert shown["taken_at"].startswith("2024-06-01T12:00:00") and shown["taken_at"].endswith("Z")
    assert shown["taken_local"].startswith("2024-06-01T14:00:00")  # Paris, summer time
    assert shown["gps"]["lat"] == pytest.approx(48.8584, abs=1e-3)
    assert shown["gps"]["lon"] == pytest.approx(2.2945, abs=1e-3)
    assert shown["place"]["country_code"] == "FR"


def test_a_truncated_clip_is_quarantined_with_a_reason(video_vault) -> None:
    vault, photos = video_vault
    vault.wait_for(
        lambda: vault.show(photos / "broken" / "cut.mp4")["state"] == "quarantined", 60, "cut.mp4"
    )
    reason = vault.show(photos / "broken" / "cut.mp4")["error"]
    assert reason and "video" in reason.lower(), reason


def test_a_motion_photo_is_analyzed_as_its_still(video_vault) -> None:
    vault, photos = video_vault
    shown = vault.show(photos / "motion" / "PXL_20240601_MP.jpg")
    assert shown["kind"] == "motion_photo", shown
    assert any(t["tag"] == "Animals|Cat" for t in shown["tags"])


def test_a_live_photo_is_one_item(video_vault) -> None:
    vault, photos = video_vault
    video = vault.show(photos / "live" / "IMG_0001.MOV")
    assert video["state"] == "done" and video["live_photo_of"] == "IMG_0001.JPG", video
    still = vault.show(photos / "live" / "IMG_0001.JPG")
    assert still["live_video"] == "IMG_0001.MOV"
    names = [Path(h["path"]).name for h in search(vault, "--tag", "drink")]
    assert "IMG_0001.JPG" in names and "IMG_0001.MOV" not in names, names


def test_the_clip_has_a_sidecar_that_exiftool_reads(video_vault) -> None:
    vault, photos = video_vault
    clip = photos / "clips" / "three_scenes.mp4"
    vault.wait_for(
        lambda: vault.show(clip).get("sidecar_state") == "written", 30, "video sidecar written"
    )
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-lr:HierarchicalSubject", str(clip) + ".xmp"],
        capture_output=True,
        text=True,
        check=True,
    )
    subjects = json.loads(out.stdout)[0]["HierarchicalSubject"]
    assert {"Animals|Cat", "Food|Drink", "Objects|Camera"} <= set(subjects)


def test_a_face_in_a_clip_has_its_time_and_no_region_in_the_sidecar(video_vault) -> None:
    vault, photos = video_vault
    clip = photos / "people" / "speech.mp4"
    shown = vault.show(clip)
    vault.wait_for(lambda: vault.show(clip)["faces"], 30, "the people stage took the face")
    shown = vault.show(clip)
    (face,) = shown["faces"]  # one person, seen in several frames: one face
    assert FACE_AT[0] <= face["at"] < FACE_AT[1], face
    assert "People|Portrait" in {t["tag"] for t in shown["tags"]}
    vault.wait_for(lambda: vault.show(clip).get("sidecar_state") == "written", 30, "sidecar")
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-mwg-rs:all", "-XMP-lr:HierarchicalSubject", str(clip) + ".xmp"],
        capture_output=True,
        text=True,
        check=True,
    )
    (tags,) = json.loads(out.stdout)
    assert "People|Portrait" in tags["HierarchicalSubject"]
    assert not any(k.startswith("Region") for k in tags), tags  # no time-based regions
