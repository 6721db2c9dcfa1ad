"""Which sidecar a photo uses: naming, the other-named existing one, the mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photovault.sidecar.naming import (
    is_own_temp,
    is_sidecar_name,
    is_temp_name,
    locate_sidecar,
    sidecar_path,
    temp_name,
)


def test_ext_naming_appends_xmp_to_the_full_name(tmp_path: Path):
    photo = tmp_path / "IMG_1.jpg"
    assert sidecar_path(photo, "ext", share_root=tmp_path) == tmp_path / "IMG_1.jpg.xmp"


def test_base_naming_replaces_the_extension(tmp_path: Path):
    photo = tmp_path / "IMG_1.jpg"
    assert sidecar_path(photo, "base", share_root=tmp_path) == tmp_path / "IMG_1.xmp"


@pytest.mark.parametrize(
    ("naming", "existing"), [("ext", "IMG_1.xmp"), ("base", "IMG_1.jpg.xmp"), ("ext", "IMG_1.XMP")]
)
def test_an_existing_sidecar_of_the_other_name_is_used(tmp_path: Path, naming, existing):
    (tmp_path / existing).write_text("x")
    assert sidecar_path(tmp_path / "IMG_1.jpg", naming, share_root=tmp_path) == (
        tmp_path / existing
    )


def test_the_preferred_name_wins_when_both_exist(tmp_path: Path):
    (tmp_path / "IMG_1.xmp").write_text("x")
    (tmp_path / "IMG_1.jpg.xmp").write_text("x")
    assert sidecar_path(tmp_path / "IMG_1.jpg", "ext", share_root=tmp_path).name == "IMG_1.jpg.xmp"


def test_read_only_share_gets_its_sidecar_in_the_mirror_tree(tmp_path: Path):
    share, mirror = tmp_path / "share", tmp_path / "state" / "sidecars" / "share"
    photo = share / "2024" / "trip" / "IMG_1.jpg"
    path = sidecar_path(photo, "ext", share_root=share, read_only=True, mirror_root=mirror)
    assert path == mirror / "2024" / "trip" / "IMG_1.jpg.xmp"


def test_read_only_share_without_mirror_root_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError):
        sidecar_path(tmp_path / "a.jpg", "ext", share_root=tmp_path, read_only=True)


def test_unknown_naming_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError):
        sidecar_path(tmp_path / "a.jpg", "stem", share_root=tmp_path)  # type: ignore[arg-type]


def test_sidecars_and_our_temp_files_are_recognised():
    assert is_sidecar_name("IMG_1.jpg.xmp") and is_sidecar_name("IMG_1.XMP")
    assert is_sidecar_name(".IMG_1.jpg.xmp.pvtmp-a1b2c3.xmp")
    assert is_temp_name(".IMG_1.jpg.xmp.pvtmp-a1b2c3.xmp")
    assert not is_temp_name("IMG_1.jpg.xmp")
    assert not is_sidecar_name("IMG_1.jpg")


def test_a_sidecar_name_too_long_for_the_folder_goes_to_the_mirror_under_a_stable_short_name(
    tmp_path: Path,
):
    share, mirror = tmp_path / "share", tmp_path / "state" / "sidecars" / "share"
    (share / "2024").mkdir(parents=True)
    photo = share / "2024" / ("ä" * 125 + ".jpg")  # 254 bytes; NAME.xmp is 258
    where = locate_sidecar(photo, "ext", share_root=share, mirror_root=mirror)
    assert where.path.parent == mirror / "2024"
    assert len(os.fsencode(where.path.name)) <= 200 and where.path.suffix == ".xmp"
    where.path.name.encode("utf-8")  # cut on a character boundary
    assert "258 bytes" in (where.mirrored_because or "")
    again = sidecar_path(photo, "ext", share_root=share, mirror_root=mirror)
    assert again == where.path  # found again by `vaultctl sidecar`
    other = sidecar_path(
        share / "2024" / ("ä" * 125 + ".png"), "ext", share_root=share, mirror_root=mirror
    )
    assert other != where.path


def test_a_name_that_fits_stays_beside_the_photo_and_a_long_one_needs_a_mirror(tmp_path: Path):
    fits = tmp_path / ("y" * 246 + ".jpg")  # NAME.xmp: 254 bytes
    assert sidecar_path(fits, "ext", share_root=tmp_path) == tmp_path / (fits.name + ".xmp")
    with pytest.raises(ValueError, match="no mirror tree"):
        sidecar_path(tmp_path / ("y" * 251 + ".jpg"), "ext", share_root=tmp_path)


def test_a_symlink_where_the_sidecar_should_be_counts_as_the_existing_sidecar(tmp_path: Path):
    (tmp_path / "IMG_1.xmp").symlink_to(tmp_path / "nowhere")
    assert sidecar_path(tmp_path / "IMG_1.jpg", "ext", share_root=tmp_path) == (
        tmp_path / "IMG_1.xmp"
    )


def test_temp_names_always_fit_and_only_our_exact_pattern_is_ours():
    assert temp_name("IMG_1.jpg.xmp", "0123456789ab", 255) == (
        ".IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp"
    )
    long_name = "z" * 250 + ".xmp"
    short = temp_name(long_name, "0123456789ab", 255)
    assert len(short) <= 255 and is_own_temp(short) and is_temp_name(short)
    assert is_own_temp(".IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp")
    assert is_own_temp(b".IMG_1.XMP.pvtmp-0123456789ab.xmp")
    for theirs in (
        "IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp",
        ".IMG_1.jpg.xmp.pvtmp-notes.xmp",
        ".IMG_1.jpg.xmp.pvtmp-0123456789ab.xmp.bak",
        ".pvtmp-0123456789ab.xmp",
        ".IMG_1.jpg.pvtmp-0123456789ab.xmp",
        ".IMG_1.jpg.xmp.pvtmp-0123456789AB.xmp",
    ):
        assert not is_own_temp(theirs), theirs
