"""Export copies of photos with every location field removed.

Why this exists: sharing a photo usually shares where it was taken (and, for
photos taken at home, where the photographer lives). `vaultctl export
--strip-location SRC... DEST` gives the user copies that are safe to hand out
while the originals stay exactly as they were.

How it works, and why in this order:

1. Copy. Each photo (files named on the command line, or every photo under a
   named folder, keeping the folder's name and layout) is copied into `dest`.
   Originals are only ever opened for reading. A name that already exists in
   `dest` is never overwritten: the copy gets the next free name, `IMG.jpg` ->
   `IMG (1).jpg` -> `IMG (2).jpg` (created with O_EXCL, so two exports racing
   cannot overwrite each other either). We chose renaming over refusing because
   re-exporting a folder after adding photos is the common case, and the user
   sees every new name in the report.
2. Strip. One exiftool run over all copies (split into runs of at most
   `_MAX_FILES_PER_RUN` files) deletes the location-bearing tags. A tag is
   judged by its identity, exiftool's family-1 group plus its tag name, never
   by a word inside the name (the word "city" is inside the colour-profile tag
   `ICC-chrm:ChromaticityChannels`, and "location" inside the camera's
   `ExifIFD:SubjectLocation`, a point in the frame). Location is:
   - every tag exiftool itself files under its family-2 group `Location`
     (kept with its tag tables: the EXIF GPS IFD, XMP-exif GPS*, IPTC and
     XMP-photoshop City/State/Country/Sub-location, iptcCore Location and
     CountryCode, iptcExt LocationCreated/LocationShown, QuickTime Keys and
     UserData location and GPSCoordinates, Samsung MCCData and LocationName,
     Panasonic and Nikon maker-note places, Darwin Core, DJI, ...);
   - the tables below, for what exiftool files elsewhere: `XMP-dc:Coverage`
     (place names), the creator's and licensor's postal address, xmpDM
     ShotLocation, GeoTIFF georeferencing, any tag named GPS* in any group,
     and the place names our own namespace records as written by us
     (`XMP-photovault:WrittenCity` ..., should a sidecar of ours have been
     embedded into a photo; exiftool runs with our `exiftool.config` so that
     it can delete them one by one; the recognized text, `photovault:Text`,
     is no location and stays).
   Not location: the time-zone city a camera's world clock is set to (Canon
   TimeZoneCity, Pentax/Casio HometownCity): it names a zone from a fixed
   list and says no more than the `OffsetTime` the copy keeps.
3. Verify, embedded images included. In the same exiftool run (further
   commands after `-execute`, so exiftool starts once) every copy is read
   back (`-j -G0:1:2 -a -n`) and every binary value in it is written out
   (`-b -W`, into a private temporary folder removed afterwards): the EXIF
   thumbnail (IFD1 ThumbnailImage), PreviewImage, JpgFromRaw, MPF images,
   maker-note previews, whatever else a file holds. exiftool then reads each
   of those the same way, down to `_MAX_NESTING` levels (a thumbnail inside
   a preview). An embedded image that carries a location is *removed* from
   the copy rather than cleaned: exiftool cannot edit metadata inside an
   embedded image, and a shared copy needs no second, stale picture of
   itself. Clean embedded images are kept.
4. Further passes. A copy that still carries a location gets a targeted
   pass: the tags left are deleted by exact group and name, an embedded image
   with a location by the tag that holds it, and whatever lives in the JPEG
   trailer (MPF images, Samsung's trailer with MCCData beside its motion-photo
   video) goes with the whole trailer, the only way exiftool can remove it.
   If that is not enough, a harsher pass also drops the maker notes (some
   makers keep places there in tags exiftool cannot delete one by one). Each
   pass is verified like the first. If anything is left, the copy is deleted
   and reported as failed, naming the file and the tags (and the embedded
   image they sit in); `vaultctl` exits non-zero. Nothing with a location is
   left behind, and nothing unchecked is reported as copied.

File names are bytes on Linux and need not be UTF-8 (b"caf\\xe9.jpg" from an
old Latin-1 camera or share). Such a name is carried as Python carries it (a
str with the bad bytes as lone surrogates, `os.fsdecode`) and reaches exiftool
and the file system as its raw bytes, so the copy keeps the original's exact
name. exiftool's JSON cannot spell such a name (it prints '?' for each bad
byte, so b"a\\xe9.jpg", b"a\\xe8.jpg" and "a?.jpg" would read back as one file),
so the read-back and the extraction read each copy through a symlink with a
plain name in the private temporary folder (`export_strip._aliases`).

Videos (and the video inside a motion photo). A video's position may sit in
its header (QuickTime Keys/ItemList/UserData ``©xyz``, XMP, Matroska tags) or
in a timed metadata track (GoPro ``gpmd``, Google ``camm``, subtitle GPS,
Sony ``rtmd``): before step 2, `export_video` remuxes with ffmpeg every video
copy that has streams other than video and audio, and every copy in a format
exiftool cannot write, keeping only video and audio (no re-encoding; the
creation date, duration and rotation stay). The read-back runs with ``-ee``,
so timed data is judged too; a video whose location exiftool could not remove
is remuxed and checked once more, and otherwise refused like any file. The
MP4 at the end of a motion photo is extracted and read like any embedded
image; when it carries a location it is taken out of the copy (with the JPEG
trailer) and the report lists it under the copy (`ExportedFile.dropped`).

What is *not* copied: sidecars (`.xmp`, `.aae`, Google Takeout `.json`) and any
other non-photo file. They often hold location too (Lightroom and Takeout write
GPS into them), so they are listed as skipped rather than copied unfiltered.
What is not detected: a location written as free text in a caption or
keyword ("Dinner in Paris"), the place visible in the picture itself, and
data exiftool cannot parse (unknown maker-note blocks).

The work is split by job: `export_plan` (which files, and the copying),
`export_strip` (exiftool's passes and the read-back), `export_tags` (what
counts as a location), `export_video` (ffmpeg's remux of videos),
`export_report` (the outcome); this module runs them in order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from photovault.media.formats import is_video
from photovault.ops.export_plan import NOT_A_PHOTO, copy_exclusive, plan_copies, remove_copy
from photovault.ops.export_report import ExportedFile, ExportError, ExportReport
from photovault.ops.export_strip import VERIFY_ARGS, check_exiftool, strip_and_verify
from photovault.ops.export_tags import (
    LOCATION_CATEGORY,
    LOCATION_GROUPS,
    LOCATION_PREFIXES,
    LOCATION_TAGS,
    STRIP_ARGS,
    is_location_tag,
    location_tags,
)
from photovault.ops.export_video import prepare_videos, read_only

__all__ = [
    "LOCATION_CATEGORY",
    "LOCATION_GROUPS",
    "LOCATION_PREFIXES",
    "LOCATION_TAGS",
    "NOT_A_PHOTO",
    "STRIP_ARGS",
    "VERIFY_ARGS",
    "ExportError",
    "ExportReport",
    "ExportedFile",
    "export_strip_location",
    "is_location_tag",
    "location_tags",
]

log = logging.getLogger(__name__)


def export_strip_location(
    sources: Sequence[Path],
    dest: Path,
    *,
    exiftool: str = "exiftool",
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
    timeout_s: float = 600.0,
) -> ExportReport:
    """Copy the photos in `sources` into `dest` and remove every location from the copies.

    Raises `ExportError` before copying anything when a source does not exist,
    `dest` is a file, `dest` lies inside a source folder (the export would
    feed on itself), or exiftool cannot be run. Problems with single files
    (unreadable, corrupt, location that cannot be removed) are reported in
    `ExportReport.failed` and the other files go on. `timeout_s` (plus half a
    second per file) bounds each exiftool run; when one is exceeded every copy
    made so far is removed and `ExportError` raised, since none was checked.
    Videos go through `export_video` first (ffmpeg drops timed GPS tracks);
    `ffmpeg` and `ffprobe` are those programs.
    """
    dest = Path(dest)
    if not sources:
        raise ExportError("nothing to export: no source files or folders given")
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest}: the export destination is a file, not a folder")
    report = ExportReport(dest=dest)
    plan = plan_copies([Path(s) for s in sources], dest, report)
    check_exiftool(exiftool)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{dest}: cannot create the export folder: {exc.strerror}") from exc

    copies: dict[Path, Path] = {}  # copy -> source
    dropped: dict[Path, list[str]] = {}  # copy -> embedded images taken out of it
    for source, target in plan:
        try:
            copy = copy_exclusive(source, target)
        except OSError as exc:
            reason = f"cannot copy: {exc.strerror or exc}"
            log.warning("export: %s: %s", source, reason)
            report.failed.append((source, reason))
            continue
        copies[copy] = source

    try:
        remuxed: set[Path] = set()
        prepare = functools.partial(
            prepare_videos, ffmpeg=ffmpeg, ffprobe=ffprobe, exiftool=exiftool, timeout_s=timeout_s
        )
        outcome = prepare(copies, remuxed=remuxed)
        checked = [c for c in copies if c not in outcome]
        unremoved: set[Path] = set()
        outcome |= strip_and_verify(
            checked, exiftool, timeout_s, STRIP_ARGS, read_only(checked), dropped, unremoved
        )
        # A video whose location exiftool could not remove is remuxed and tried once more.
        again = [c for c in unremoved if is_video(c) and c not in remuxed]
        if again:
            retry = prepare(again, force=True)
            rest = [c for c in again if c not in retry]
            retry |= strip_and_verify(rest, exiftool, timeout_s, STRIP_ARGS, (), dropped)
            for c in again:
                if c in retry:
                    outcome[c] = retry[c]
                else:
                    del outcome[c]
    except BaseException:
        # exiftool died or hung: no copy made here is known to be clean.
        for copy in copies:
            remove_copy(copy)
        raise
    for copy, source in copies.items():
        problem = outcome.get(copy)
        if problem is None:
            report.copied.append(ExportedFile(source, copy, tuple(dropped.get(copy, ()))))
            if copy in dropped:
                log.info(
                    "export: %s: removed from the copy, as it carried a location: %s",
                    source,
                    ", ".join(dropped[copy]),
                )
            continue
        remove_copy(copy)
        log.warning("export: %s: %s (copy removed)", source, problem)
        report.failed.append((source, problem))
    log.info(
        "export to %s: %d copied without location, %d failed, %d skipped",
        dest,
        len(report.copied),
        len(report.failed),
        len(report.skipped),
    )
    return report
