"""Places end to end: real vaultd names where photos were taken, offline, and finds them.

Photos a few kilometres apart across the Rhine (Strasbourg, France / Kehl, Germany),
one in Lisbon, one far out in the Atlantic and one without GPS, written by exiftool;
the metadata analyzer names the places, the sidecars carry them, and search, show and
`vaultctl places` agree.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.vault import VaultProcess, write_config

from .test_search import exif, skimage_jpeg

#: name -> (lat, lon, what the place must be)
POSITIONS = {
    "strasbourg.jpg": (48.5830, 7.7480, ("FR", "Strasbourg")),
    "kehl.jpg": (48.5720, 7.8150, ("DE", "Kehl")),
    "lisbon.jpg": (38.7100, -9.1400, ("PT", "Lisbon")),
    "atlantic.jpg": (35.0000, -40.0000, None),
}


def _gps(lat: float, lon: float) -> list[str]:
    return [
        f"-GPSLatitude={abs(lat)}",
        f"-GPSLatitudeRef={'N' if lat >= 0 else 'S'}",
        f"-GPSLongitude={abs(lon)}",
        f"-GPSLongitudeRef={'E' if lon >= 0 else 'W'}",
    ]


@pytest.fixture(scope="module")
def places_vault(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("places")
    photos = base / "photos"
    for name, (lat, lon, _want) in POSITIONS.items():
        path = skimage_jpeg("coffee", photos / name, scale=0.4)
        # 23:30 on Christmas Eve, no offset: the local day must stay the 24th.
        exif(path, "-DateTimeOriginal=2023:12:24 23:30:00", *_gps(lat, lon))
    skimage_jpeg("chelsea", photos / "nogps.jpg", scale=0.4)
    # A person's own city in an existing sidecar is never overwritten.
    subprocess.run(
        ["exiftool", "-q", "-o", str(photos / "kehl.jpg.xmp"), "-XMP-photoshop:City=Grandma's"],
        check=True,
        input=None,
    )
    vault = VaultProcess(write_config(base, analyzers=["metadata"]), base)
    vault.start()
    vault.wait_idle(expect_done=len(POSITIONS) + 1, timeout=180)
    yield vault, photos
    vault.stop()


def _search(vault: VaultProcess, *args: str) -> list[str]:
    r = vault.ctl("search", *args, "--json", check=False)
    assert r.returncode in (0, 1), r.stderr
    return sorted(Path(h["path"]).name for h in json.loads(r.stdout)) if r.returncode == 0 else []


def test_show_names_the_country_and_town_on_each_side_of_the_border(places_vault) -> None:
    vault, photos = places_vault
    for name, (_lat, _lon, want) in POSITIONS.items():
        shown = vault.show(photos / name)
        if want is None:
            assert shown["place"] is None, (name, shown["place"])
            continue
        assert (shown["place"]["country_code"], shown["place"]["city"]) == want, name
    assert vault.show(photos / "nogps.jpg")["place"] is None
    human = vault.ctl("show", str(photos / "lisbon.jpg")).stdout
    assert "Lisbon, Portugal" in human


def test_local_time_keeps_christmas_eve_and_says_where_the_zone_came_from(places_vault) -> None:
    vault, photos = places_vault
    shown = vault.show(photos / "kehl.jpg")
    assert shown["local_time"]["zone"] == "Europe/Berlin"
    assert shown["local_time"]["offset"] == "+01:00"
    assert shown["local_time"]["source"] == "position"
    assert _search(vault, "--after", "2023-12-24", "--before", "2023-12-25", "--place", "Kehl") == [
        "kehl.jpg"
    ]


def test_search_by_town_region_and_country_finds_exactly_those_photos(places_vault) -> None:
    vault, _ = places_vault
    assert _search(vault, "--place", "kehl") == ["kehl.jpg"]
    assert _search(vault, "--place", "STRASBOURG") == ["strasbourg.jpg"]
    assert _search(vault, "--place", "Germany") == ["kehl.jpg"]
    assert _search(vault, "--place", "PT") == ["lisbon.jpg"]
    assert _search(vault, "--place", "Atlantis") == []  # a town in Florida
    assert _search(vault, "Lisbon") == ["lisbon.jpg"]
    assert _search(vault, "--near", "Kehl") == ["kehl.jpg", "strasbourg.jpg"]


def test_search_by_place_takes_other_names_of_towns_and_countries(places_vault) -> None:
    vault, _ = places_vault
    assert _search(vault, "--place", "Lisboa") == ["lisbon.jpg"]
    assert _search(vault, "--place", "Deutschland") == ["kehl.jpg"]
    usa = vault.ctl("search", "--place", "USA", "--json", check=False)
    assert (json.loads(usa.stdout), usa.stderr) == ([], "")  # known, just no photo there
    assert _search(vault, "--near", "Strasbourg, France") == ["kehl.jpg", "strasbourg.jpg"]


def test_an_unknown_place_or_a_country_given_to_near_is_refused_with_a_reason(
    places_vault,
) -> None:
    vault, _ = places_vault
    unknown = vault.ctl("search", "--place", "Strasbourgg", "--json", check=False)
    assert unknown.returncode != 0 and "no place called 'Strasbourgg'" in unknown.stderr
    country = vault.ctl("search", "--near", "Georgia", "--json", check=False)
    assert country.returncode != 0 and "--place" in country.stderr


def test_places_lists_the_library_by_country_with_counts(places_vault) -> None:
    vault, _ = places_vault
    listing = json.loads(vault.ctl("places", "--json").stdout)
    text = json.dumps(listing)
    for town in ("Strasbourg", "Kehl", "Lisbon"):
        assert town in text
    human = vault.ctl("places").stdout
    assert "Germany" in human and "France" in human and "Portugal" in human


def test_sidecars_carry_the_place_unless_a_person_set_one(places_vault) -> None:
    vault, photos = places_vault

    def fields(name: str) -> dict:
        out = subprocess.run(
            [
                "exiftool",
                "-j",
                "-XMP-photoshop:City",
                "-XMP-photoshop:Country",
                "-XMP-iptcCore:CountryCode",
                str(photos / f"{name}.xmp"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)[0]

    vault.wait_for(
        lambda: (photos / "lisbon.jpg.xmp").exists() and (photos / "strasbourg.jpg.xmp").exists(),
        60,
        "sidecars",
    )
    lisbon = fields("lisbon.jpg")
    assert (lisbon.get("City"), lisbon.get("Country"), lisbon.get("CountryCode")) == (
        "Lisbon",
        "Portugal",
        "PT",
    )
    assert fields("strasbourg.jpg").get("CountryCode") == "FR"
    kehl = fields("kehl.jpg")
    assert kehl.get("City") == "Grandma's"
    assert kehl.get("CountryCode") is None  # theirs beside ours would name two places
