"""Human `vaultctl` output of moments in videos, `similar` at a time, and contact
sheets that show a video hit's frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers.videos import make_clip, solid
from photovault.cli.cmd_search import parse_time, split_moment
from photovault.cli.output import clock, format_results, format_show
from photovault.cli.sheets import render_contact_sheet, render_sheet
from photovault.cli.vaultctl import _filters, build_parser
from photovault.query.client import ClientError


def hit(path: str, **over: Any) -> dict[str, Any]:
    h: dict[str, Any] = {
        "path": path,
        "kind": "photo",
        "score": 0.5,
        "taken_at": "2023-12-24T23:30:00",
        "tags": [],
        "people": [],
        "text_match": None,
        "place": None,
    }
    h.update(over)
    return h


def test_a_video_hit_shows_its_moment_after_the_path() -> None:
    head, video, still = format_results([hit("/p/clip.mp4", kind="video", at=5.4), hit("/p/a.jpg")])

    assert "/p/clip.mp4 @ 0:05" in video
    assert "@" not in still
    assert head.split()[:2] == ["score", "path"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00"), (5.9, "0:05"), (75, "1:15"), (3599, "59:59"), (3723.5, "1:02:03")],
)
def test_a_moment_reads_as_minutes_and_seconds_and_hours_past_an_hour(
    seconds: float, shown: str
) -> None:
    assert clock(seconds) == shown


def test_show_prints_a_videos_duration_as_a_player_does() -> None:
    lines = format_show({"path": "/p/clip.mp4", "kind": "video", "duration": 83.5})

    assert any(line.split() == ["kind", "video"] for line in lines)
    assert any(line.split()[:2] == ["duration", "1:23"] for line in lines)


def test_similar_takes_a_time_as_an_option_or_after_an_at_sign(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    odd = tmp_path / "me@home.jpg"
    odd.touch()

    assert split_moment(str(clip), "0:05") == (str(clip), 5.0)
    assert split_moment(f"{clip}@5", None) == (str(clip), 5.0)
    assert split_moment(f"{clip}@1:02:03.5", None) == (str(clip), 3723.5)
    assert split_moment(str(odd), None) == (str(odd), None)  # a file of that name
    assert split_moment(str(clip), None) == (str(clip), None)


def test_a_time_that_is_not_one_is_refused() -> None:
    for bad in ("soon", "-1", "1:2:3:4", ""):
        with pytest.raises(ClientError):
            parse_time(bad)


def test_search_and_similar_take_kind_and_at() -> None:
    parser = build_parser()

    args = parser.parse_args(["search", "dog", "--kind", "video"])
    assert _filters(args) == {"kind": "video"}
    assert parser.parse_args(["similar", "clip.mp4", "--at", "5"]).at == "5"


def test_a_contact_sheet_shows_a_video_hit_at_its_moment(tmp_path: Path) -> None:
    pytest.importorskip("photovault.media.video")
    red, blue = (200, 0, 0), (0, 0, 200)
    clip = make_clip(tmp_path / "clip.mp4", [(solid(red), 2.0), (solid(blue), 2.0)], size=(64, 64))
    sheet = tmp_path / "sheet.png"

    n = render_contact_sheet([hit(str(clip), kind="video", at=3.0)], str(sheet))

    assert n == 1
    pixels = np.asarray(Image.open(sheet).convert("RGB"), dtype=int)
    blueish = (pixels[..., 2] > 150) & (pixels[..., 0] < 60)
    redish = (pixels[..., 0] > 150) & (pixels[..., 2] < 60)
    assert blueish.sum() > 1000 and redish.sum() == 0  # the frame at 0:03, not the first


def test_a_face_sheet_crops_a_video_face_from_the_frame_it_was_seen_in(tmp_path: Path) -> None:
    red, blue = (200, 0, 0), (0, 0, 200)
    clip = make_clip(tmp_path / "clip.mp4", [(solid(red), 2.0), (solid(blue), 2.0)], size=(64, 64))
    sheet = tmp_path / "faces.png"

    face = {"id": 7, "path": str(clip), "at": 3.0, "box": [0.25, 0.25, 0.5, 0.5]}
    assert render_sheet([face], str(sheet)) == 1

    pixels = np.asarray(Image.open(sheet).convert("RGB"), dtype=int)
    blueish = (pixels[..., 2] > 150) & (pixels[..., 0] < 60)
    redish = (pixels[..., 0] > 150) & (pixels[..., 2] < 60)
    assert blueish.sum() > 1000 and redish.sum() == 0


def _colours(sheet: Path) -> tuple[int, int]:
    pixels = np.asarray(Image.open(sheet).convert("RGB"), dtype=int)
    red = (pixels[..., 0] > 150) & (pixels[..., 2] < 60)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 60)
    return int(red.sum()), int(blue.sum())


def test_a_contact_sheet_shows_a_video_hit_without_a_moment_at_its_start(tmp_path: Path) -> None:
    red, blue = (200, 0, 0), (0, 0, 200)
    clip = make_clip(tmp_path / "clip.mp4", [(solid(red), 2.0), (solid(blue), 2.0)], size=(64, 64))
    sheet = tmp_path / "sheet.png"

    # a video hit with no moment, and one whose kind the index did not know
    n = render_contact_sheet([hit(str(clip), kind="video"), hit(str(clip))], str(sheet))

    assert n == 2
    reds, blues = _colours(sheet)
    assert reds > 2000 and blues == 0  # both at the first frame


def test_a_face_sheet_crops_a_video_face_without_a_time_from_its_first_frame(
    tmp_path: Path,
) -> None:
    red, blue = (200, 0, 0), (0, 0, 200)
    clip = make_clip(tmp_path / "clip.mp4", [(solid(red), 2.0), (solid(blue), 2.0)], size=(64, 64))
    sheet = tmp_path / "faces.png"

    face = {"id": 7, "path": str(clip), "box": [0.25, 0.25, 0.5, 0.5]}
    assert render_sheet([face], str(sheet)) == 1

    reds, blues = _colours(sheet)
    assert reds > 1000 and blues == 0


def test_a_file_that_is_neither_image_nor_video_is_skipped_with_the_image_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture at all")

    assert render_contact_sheet([hit(str(junk))], str(tmp_path / "sheet.png")) == 0
    assert "skipped" in capsys.readouterr().err
