"""Which sidecar a photo uses: naming, the other-named existing one, the mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from photovault.sidecar.naming import is_sidecar_name, is_temp_name, sidecar_path


def test_ext_naming_appends_xmp_to_the_full_name(tmp_path: Path):
    photo = tmp_path / "IMG_1.jpg"
    assert sidecar_path(photo, "ext", share_root=tmp_path) == tmp_path / "IMG_1.jpg.xmp"


def test_base_naming_replaces_the_extension(tmp_path: Path):
    photo = tmp_path / "IMG_1.jpg"
    assert sidecar_path(photo, "base", share_root=tmp_path) == tmp_path / "IMG_1.xmp"


@pytest.mark.parametrize(("naming", "existing"), [("ext", "IMG_1.xmp"), ("base", "IMG_1.jpg.xmp"),
                                                  ("ext", "IMG_1.XMP")])
def test_an_existing_sidecar_of_the_other_name_is_used(tmp_path: Path, naming, existing):
    (tmp_path / existing).write_text("x")
    assert sidecar_path(tmp_path / "IMG_1.jpg", naming, share_root=tmp_path) == (
        tmp_path / existing)


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
