"""What counts as a location: exiftool tags judged by group and name, and their deletion.

One set of tables both builds the exiftool deletions (`STRIP_ARGS`) and
judges the read-back (`is_location_tag`), so the two cannot drift apart; why
each table holds what it holds is told in `ops.export`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from photovault.sidecar.schema import PLACE_FIELDS

#: exiftool's family-2 group for location tags; every tag in it is location.
LOCATION_CATEGORY = "Location"

#: Family-1 groups every tag of which is location (the EXIF GPS IFD).
LOCATION_GROUPS: frozenset[str] = frozenset({"GPS"})

#: Tag-name prefixes that make a tag location: "*" in any group, else in that
#: family-1 group (iptcExt flattens its location structures to these names).
LOCATION_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "*": ("GPS",),
    "XMP-iptcExt": ("LocationCreated", "LocationShown"),
}

#: Location-bearing tags by identity: family-1 group -> exact tag names. Most
#: are in exiftool's `Location` group as well (listed so that the judgement
#: and the deletion do not depend on one source); the rest are filed by
#: exiftool under other groups but name a place or a postal address.
LOCATION_TAGS: Mapping[str, frozenset[str]] = {
    "IPTC": frozenset(
        {
            "City",
            "Sub-location",
            "Province-State",
            "Country-PrimaryLocationCode",
            "Country-PrimaryLocationName",
            "ContentLocationCode",
            "ContentLocationName",
        }
    ),
    "XMP-photoshop": frozenset({"City", "State", "Country"}),
    "XMP-iptcCore": frozenset(
        {
            "Location",
            "CountryCode",
            # the creator's contact address (exiftool: Author)
            "CreatorAddress",
            "CreatorCity",
            "CreatorCountry",
            "CreatorPostalCode",
            "CreatorRegion",
        }
    ),
    "XMP-dc": frozenset({"Coverage"}),  # "spatial topic": place names (exiftool: Other)
    "XMP-xmpDM": frozenset({"ShotLocation"}),
    "XMP-plus": frozenset(
        {
            "LicensorCity",
            "LicensorCountry",
            "LicensorExtendedAddress",
            "LicensorPostalCode",
            "LicensorRegion",
            "LicensorStreetAddress",
        }
    ),
    "XMP-photovault": frozenset(f.record for f in PLACE_FIELDS),
    "XMP-prism": frozenset({"Location"}),
    "XMP-pmi": frozenset({"Location"}),
    "Keys": frozenset(
        {
            "LocationName",
            "LocationBody",
            "LocationNote",
            "LocationRole",
            "LocationAccuracyHorizontal",
        }
    ),
    "UserData": frozenset({"LocationInformation"}),
    "Samsung": frozenset({"MCCData", "LocationName", "LocalLocationName"}),
    "Panasonic": frozenset({"City", "City2", "State", "Country", "Landmark", "Location"}),
    "Nikon": frozenset({"Location", "CountryCode"}),
    # GeoTIFF georeferencing: places the picture on the map
    "IFD0": frozenset(
        {
            "GeoTiffDirectory",
            "GeoTiffDoubleParams",
            "GeoTiffAsciiParams",
            "ModelTiePoint",
            "ModelTransform",
        }
    ),
}


#: Location tags exiftool reads but cannot write (Matroska/WebM, Xtra): judged
#: in the read-back, never in the deletions; ffmpeg drops them (`export_video`).
READ_ONLY_TAGS: Mapping[str, frozenset[str]] = {
    "Matroska": frozenset({"Location", "RecordingLocation", "CompositionLocation"}),
    # Windows' Xtra atom in MP4 (exiftool reads, cannot write; a remux drops it)
    "Microsoft": frozenset(
        {
            "City",
            "Location",
            "Country-Region",
            "OtherCity",
            "OtherCountry-Region",
            "HomeCity",
            "HomeCountry-Region",
            "BusinessCity",
            "BusinessCountry-Region",
            "OfficeLocation",
        }
    ),
}


def _strip_args() -> tuple[str, ...]:
    """The exiftool deletions for everything `is_location_tag` accepts."""
    args = [f"-{LOCATION_CATEGORY}:all="]
    args += [f"-{group}:all=" for group in sorted(LOCATION_GROUPS)]
    for group, prefixes in LOCATION_PREFIXES.items():
        args += [f"-{p}*=" if group == "*" else f"-{group}:{p}*=" for p in prefixes]
    for group, names in LOCATION_TAGS.items():
        args += [f"-{group}:{name}=" for name in sorted(names)]
    # The whole contact structure (address, but also phone and e-mail) goes.
    args.append("-XMP-iptcCore:CreatorContactInfo=")
    return tuple(args)


#: exiftool arguments that delete location data (all writable tags of the
#: `Location` group plus the tables above), derived from the same tables that
#: judge the read-back, so the two cannot drift apart.
STRIP_ARGS: tuple[str, ...] = _strip_args()


#: An exiftool key split into (family-0 group, family-1 group, family-2 group, tag).
Key = tuple[str, str, str, str]


def split_key(key: str) -> Key:
    """(family 0, family 1, family 2, tag) of an exiftool `-j` key; "" where not given.

    Keys are `G0:G1:G2:Tag` from `-G0:1:2`, `G1:G2:Tag`, or `G1:Tag` from `-G1`.
    """
    parts = key.split(":")
    if len(parts) >= 4:
        return parts[-4], parts[-3], parts[-2], parts[-1]
    if len(parts) == 3:
        return "", parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], "", parts[1]
    return "", "", "", key


def is_location_tag(group: str, name: str, category: str = "") -> bool:
    """True when the tag `group:name` (family-1 group) carries a location.

    `category` is the tag's family-2 group where known; exiftool's own
    `Location` category counts whatever the group and name.
    """
    if category == LOCATION_CATEGORY or group in LOCATION_GROUPS:
        return True
    if name in LOCATION_TAGS.get(group, ()) or name in READ_ONLY_TAGS.get(group, ()):
        return True
    prefixes = (*LOCATION_PREFIXES.get("*", ()), *LOCATION_PREFIXES.get(group, ()))
    return any(name.lower().startswith(p.lower()) for p in prefixes)


def location_keys(keys: Iterable[str]) -> list[tuple[str, str, str]]:
    """(family 0, family 1, tag) of the keys that carry a location, in order, once each."""
    found: dict[tuple[str, str, str], None] = {}
    for key in keys:
        if key == "SourceFile":
            continue
        g0, g1, g2, name = split_key(key)
        if is_location_tag(g1, name, g2):
            found[(g0, g1, name)] = None
    return list(found)


def location_tags(row: Mapping[str, Any]) -> list[str]:
    """The `Group:Tag` (family-1 group) keys of one exiftool `-j` row that carry a location.

    The row may come from `-G1` or `-G0:1:2`; tag names are judged by their
    identity, values never.
    """
    return [f"{g1}:{name}" for _, g1, name in location_keys(row)]
