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
plain name in the private temporary folder (`_aliases`).

What is *not* copied: sidecars (`.xmp`, `.aae`, Google Takeout `.json`) and any
other non-photo file. They often hold location too (Lightroom and Takeout write
GPS into them), so they are listed as skipped rather than copied unfiltered.
What is not detected: a location written as free text in a caption or
keyword ("Dinner in Paris"), the place visible in the picture itself, and
data exiftool cannot parse (unknown maker-note blocks).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photovault.media.formats import is_supported
from photovault.sidecar.schema import PLACE_FIELDS
from photovault.sidecar.writer import CONFIG_PATH

log = logging.getLogger(__name__)

# -- what counts as a location -------------------------------------------------

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
    "Keys": frozenset({"LocationName", "LocationBody", "LocationNote", "LocationRole"}),
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

#: exiftool arguments for the read-back: every tag (-a) named by family 0, 1
#: and 2 groups (-G0:1:2, so a key reads `EXIF:GPS:Location:GPSLatitude`),
#: numbers as numbers (-n).
VERIFY_ARGS: tuple[str, ...] = ("-j", "-G0:1:2", "-a", "-n")

NOT_A_PHOTO = "not a photo (sidecars and other files are not copied)"

# Keep one exiftool command line well under ARG_MAX (2 MiB on Linux).
_MAX_ARG_BYTES = 120_000
# Embedded previews of a run are written to a temporary folder: RAW files
# carry several MB of them each, so a run takes this many files at most.
_MAX_FILES_PER_RUN = 64
# How deep images inside images are followed (a thumbnail inside a preview
# inside an MPF image is 3).
_MAX_NESTING = 4
# Family-0 groups of what exiftool finds in a JPEG trailer, after the image.
_TRAILER_GROUPS = frozenset({"MPF", "Trailer", "JPEG"})
_READ_MARK = "::photovault-verify::"
_EXTRACT_MARK = "::photovault-extract::"
# Folders that hold NAS thumbnails or OS metadata, never the user's photos.
_SYSTEM_DIRS = frozenset({"@eaDir", "#recycle", "$RECYCLE.BIN", "lost+found"})


class ExportError(Exception):
    """The export cannot start (missing source, dest is a file, no exiftool)."""


@dataclass(frozen=True)
class ExportedFile:
    source: Path
    copy: Path


@dataclass
class ExportReport:
    """What happened to every file the sources named.

    `failed` and `skipped` hold (path, reason); the path is the source file, so
    the user can find it. No copy exists in `dest` for a failed file.
    """

    dest: Path
    copied: list[ExportedFile] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "copied": [{"source": str(f.source), "copy": str(f.copy)} for f in self.copied],
            "failed": [{"path": str(p), "reason": r} for p, r in self.failed],
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
        }


def export_strip_location(
    sources: Sequence[Path],
    dest: Path,
    *,
    exiftool: str = "exiftool",
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
    """
    dest = Path(dest)
    if not sources:
        raise ExportError("nothing to export: no source files or folders given")
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest}: the export destination is a file, not a folder")
    report = ExportReport(dest=dest)
    plan = _plan([Path(s) for s in sources], dest, report)
    _check_exiftool(exiftool)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{dest}: cannot create the export folder: {exc.strerror}") from exc

    copies: dict[Path, Path] = {}  # copy -> source
    for source, target in plan:
        try:
            copy = _copy_exclusive(source, target)
        except OSError as exc:
            reason = f"cannot copy: {exc.strerror or exc}"
            log.warning("export: %s: %s", source, reason)
            report.failed.append((source, reason))
            continue
        copies[copy] = source

    try:
        outcome = _strip_and_verify(list(copies), exiftool, timeout_s)
    except BaseException:
        # exiftool died or hung: no copy made here is known to be clean.
        for copy in copies:
            _remove_copy(copy)
        raise
    for copy, source in copies.items():
        problem = outcome.get(copy)
        if problem is None:
            report.copied.append(ExportedFile(source, copy))
            continue
        _remove_copy(copy)
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


# -- planning and copying ----------------------------------------------------


def _plan(sources: list[Path], dest: Path, report: ExportReport) -> list[tuple[Path, Path]]:
    """(source file, wanted copy path) for every photo; the rest goes to `report`."""
    dest_real = dest.resolve()
    missing = [s for s in sources if not os.path.lexists(s)]
    if missing:
        raise ExportError("no such file or folder: " + ", ".join(str(s) for s in missing))
    plan: list[tuple[Path, Path]] = []
    for src in sources:
        if src.is_dir():
            src_real = src.resolve()
            if dest_real == src_real or src_real in dest_real.parents:
                raise ExportError(
                    f"{dest}: the export destination lies inside the source folder {src}; "
                    "choose a folder outside it"
                )
            base = dest / (src_real.name or "photos")
            plan.extend(_walk(src, base, report))
        elif src.is_file():
            if "\n" in src.name:
                report.failed.append((src, "the file name contains a line break"))
            elif is_supported(src):
                plan.append((src, dest / src.name))
            else:
                report.skipped.append((src, NOT_A_PHOTO))
        else:
            report.skipped.append((src, "not a regular file"))
    return plan


def _walk(root: Path, base: Path, report: ExportReport) -> Iterable[tuple[Path, Path]]:
    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        report.failed.append((where, f"cannot read folder: {exc.strerror or exc}"))

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        here = Path(folder)
        for name in sorted(dirs):
            if name.startswith(".") or name in _SYSTEM_DIRS:
                dirs.remove(name)
                report.skipped.append((here / name, "hidden or system folder"))
        dirs.sort()
        rel = here.relative_to(root)
        for name in sorted(files):
            path = here / name
            if name.startswith("."):
                report.skipped.append((path, "hidden file (for example a macOS ._ fork)"))
            elif not is_supported(name):
                report.skipped.append((path, NOT_A_PHOTO))
            elif "\n" in name:
                report.failed.append((path, "the file name contains a line break"))
            else:
                yield path, base / rel / name


def _copy_exclusive(source: Path, target: Path) -> Path:
    """Copy `source` to `target`, or to `stem (n).ext` when that exists; returns the path.

    O_EXCL makes "does it exist" and "create it" one step, so no existing file
    is ever replaced. A partial copy is removed on error.
    """
    with open(source, "rb") as src:
        st = os.fstat(src.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        for n in range(10_000):
            candidate = target.with_name(f"{target.stem} ({n}){target.suffix}") if n else target
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.utime(candidate, ns=(st.st_atime_ns, st.st_mtime_ns))
            except BaseException:
                candidate.unlink(missing_ok=True)
                raise
            return candidate
    raise FileExistsError(0, "no free name left", str(target))


def _remove_copy(copy: Path) -> None:
    """Delete a copy that is not known to be clean, and exiftool's half-written file."""
    copy.unlink(missing_ok=True)
    copy.with_name(copy.name + "_exiftool_tmp").unlink(missing_ok=True)


# -- exiftool ------------------------------------------------------------------


def _check_exiftool(exiftool: str) -> None:
    """Fail before copying: without exiftool the copies would keep their location."""
    if shutil.which(exiftool) is None:
        raise ExportError(
            f"cannot run exiftool ({exiftool}): not found; install libimage-exiftool-perl"
        )


#: An exiftool key split into (family-0 group, family-1 group, family-2 group, tag).
_Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Doc:
    """What exiftool reads: an exported copy, or an image embedded in one."""

    copy: Path
    #: (family-0 group, family-1 group, tag) of each tag the image is stored
    #: in, outermost first; empty for the copy itself.
    chain: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class _Found:
    """A location tag still in a copy, or in an image embedded in it."""

    doc: _Doc
    tag: tuple[str, str, str]  # family-0 group, family-1 group, tag name

    def describe(self) -> str:
        text = f"{self.tag[1]}:{self.tag[2]}"
        if self.doc.chain:
            inside = " > ".join(f"{g1}:{name}" for _, g1, name in self.doc.chain)
            text += f" (in the embedded image {inside})"
        return text

    def deletion(self, harsh: bool) -> tuple[str, ...]:
        """exiftool arguments that take this out of the copy.

        A tag of the copy is deleted by its exact group and name; an embedded
        image with a location is deleted whole, by the tag that holds it. What
        lives in a JPEG trailer (MPF images, Google's motion-photo video,
        Samsung's trailer with MCCData, which exiftool reads as Samsung maker
        notes) can only go with the whole trailer, and the MPF index of the
        images that were in it goes too. `harsh` also drops the maker notes,
        where makers keep tags exiftool cannot delete one by one.
        """
        g0, g1, name = self.doc.chain[0] if self.doc.chain else self.tag
        args = [f"-{g1}:{name}="]
        if g0 in _TRAILER_GROUPS or g1 == "Samsung" or harsh:
            args += ["-trailer:all=", "-MPF:all="]
        if harsh:
            args.append("-makernotes:all=")
        return tuple(args)


def _strip_and_verify(copies: list[Path], exiftool: str, timeout_s: float) -> dict[Path, str]:
    """Strip location from `copies`; returns the copies that must not be kept, with why."""
    problems: dict[Path, str] = {}
    if not copies:
        return problems
    residue = _strip_pass(exiftool, STRIP_ARGS, copies, timeout_s, problems)
    # Further passes, only for the few that kept something: first the exact
    # deletions their own leftovers need, then with the maker notes dropped.
    # Files that need the same arguments share a run.
    for harsh in (False, True):
        by_args: dict[tuple[str, ...], list[Path]] = {}
        for path, found in residue.items():
            if path in problems:
                continue
            args = tuple(dict.fromkeys(arg for f in found for arg in f.deletion(harsh)))
            by_args.setdefault(args, []).append(path)
        residue = {}
        for args, paths in by_args.items():
            residue.update(_strip_pass(exiftool, args, paths, timeout_s, problems))
    for path, found in residue.items():
        if path in problems:
            continue
        tags = ", ".join(dict.fromkeys(f.describe() for f in found))
        problems[path] = f"location tags could not be removed: {tags}"
    return problems


def _chunks(paths: list[Path]) -> Iterable[list[Path]]:
    chunk: list[Path] = []
    size = 0
    for path in paths:
        length = 3 * (len(os.fsencode(path)) + 1)  # named in all three commands
        if chunk and (size + length > _MAX_ARG_BYTES or len(chunk) >= _MAX_FILES_PER_RUN):
            yield chunk
            chunk, size = [], 0
        chunk.append(path)
        size += length
    if chunk:
        yield chunk


def _run(
    exiftool: str, args: Sequence[str | bytes], count: int, timeout_s: float
) -> tuple[bytes, str]:
    """Run exiftool once; (stdout, stderr). Bounded by `timeout_s` plus half a second a file.

    stderr names files by their raw bytes; it is decoded as file names are
    (`os.fsdecode`), so a name in it is equal to the path's str. Our
    `exiftool.config` defines our namespace's tags, so they can be deleted.
    """
    try:
        proc = subprocess.run(
            [exiftool, "-config", os.fsencode(CONFIG_PATH), *args],
            capture_output=True,
            timeout=timeout_s + 0.5 * count,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"exiftool took longer than {exc.timeout:.0f} s; export stopped") from exc
    except OSError as exc:
        raise ExportError(f"cannot run exiftool ({exiftool}): {exc}") from exc
    return proc.stdout, os.fsdecode(proc.stderr)


def _extract_args(out: Path) -> list[str]:
    """Write every binary value (-b, all of them: -a) of each file to its own file.

    `--Wext txt` leaves out the text values; what is left are embedded images,
    profiles and opaque blocks, each as `out/<file read>/<group>=<tag>=<n>.<ext>`.
    """
    return ["-q", "-a", "-b", "-W", f"{out}/%d%f.%e/%g1=%t=%c.%s", "--Wext", "txt"]


def _strip_pass(
    exiftool: str,
    tag_args: Sequence[str],
    paths: list[Path],
    timeout_s: float,
    problems: dict[Path, str],
) -> dict[Path, list[_Found]]:
    """Delete tags in place and read the files back, embedded images included.

    Returns the files that still carry location tags (with the tags). Files
    exiftool could not rewrite or read back go to `problems`: unchecked means
    not kept. `-m` lets exiftool write files with minor format problems
    (common in phone photos); the read-back decides whether the result is
    acceptable. The write, the read-back and the extraction of embedded
    images are one exiftool run per chunk (commands joined by `-execute`);
    the later commands mark their start on stderr, so errors are told apart
    by the command that raised them. The extracted images live in a private
    temporary folder that is removed with everything in it.
    """
    residue: dict[Path, list[_Found]] = {}
    for chunk in _chunks(paths):
        with tempfile.TemporaryDirectory(prefix="photovault-export-") as tmp_name:
            tmp = Path(os.path.abspath(tmp_name))
            docs = _write_and_read(exiftool, tag_args, chunk, tmp, timeout_s, problems, residue)
            for level in range(1, _MAX_NESTING + 1):
                if not docs:
                    break
                docs = _read_embedded(exiftool, docs, tmp, level, timeout_s, problems, residue)
    return residue


def _write_and_read(
    exiftool: str,
    tag_args: Sequence[str],
    chunk: list[Path],
    tmp: Path,
    timeout_s: float,
    problems: dict[Path, str],
    residue: dict[Path, list[_Found]],
) -> list[tuple[Path, _Doc]]:
    """Strip, read back and extract one chunk of copies; returns the embedded files.

    The copies are rewritten under their own names, given as raw bytes
    (absolute, so never read as an option: "-x.jpg"), and read back under
    their `_aliases`.
    """
    names = {os.path.abspath(p): p for p in chunk}
    aliases = _aliases(chunk, tmp)
    out = tmp / "out0"
    stdout, stderr = _run(
        exiftool,
        [
            "-m",
            "-q",
            "-overwrite_original",
            "-P",
            *tag_args,
            *(os.fsencode(name) for name in names),
            "-execute",
            "-echo2",
            _READ_MARK,
            *VERIFY_ARGS,
            *aliases,
            "-execute",
            "-echo2",
            _EXTRACT_MARK,
            *_extract_args(out),
            *aliases,
        ],
        len(chunk),
        timeout_s,
    )
    write_err, _, rest = stderr.partition(_READ_MARK)
    read_err, _, _ = rest.partition(_EXTRACT_MARK)
    for path, why in _errors_by_file(write_err, names).items():
        problems[path] = f"exiftool could not rewrite it: {why}"
    for path, why in _errors_by_file(read_err, aliases).items():
        problems.setdefault(path, f"cannot be read back to check it: {why}")
    read: dict[str, tuple[_Doc, list[_Key]]] = {}
    for row in _json_rows(stdout):
        name = str(dict(row).get("SourceFile"))
        found = aliases.get(name)
        if found is None or found in problems:
            continue
        path = found
        error = next((v for k, v in row if k.endswith(":Error")), None)
        if error is not None:
            problems[path] = f"cannot be read back to check it: {error}"
            continue
        doc = _Doc(path)
        read[name] = (doc, _binary_tags(row))
        if hits := [_Found(doc, tag) for tag in _location_keys(k for k, _ in row)]:
            residue[path] = hits
    for alias, path in aliases.items():
        if alias not in read:
            problems.setdefault(path, "cannot be read back to check it")
    return _collect(out, read, tmp, 0, problems)


def _aliases(chunk: list[Path], tmp: Path) -> dict[str, Path]:
    """A plain name for each copy, a symlink in `tmp`: alias -> copy.

    exiftool reads a copy back through its alias, so every JSON row and error
    line names it exactly whatever the copy's own name (see the module notes).
    `-b` would spell a name that is not UTF-8 in base64, but would also put
    every embedded image (megabytes in a RAW file) into the JSON. The alias
    keeps the suffix, by which exiftool tells some formats apart, and keeps
    the paths of extracted images short.
    """
    folder = tmp / "in"
    folder.mkdir()
    aliases: dict[str, Path] = {}
    for n, path in enumerate(chunk):
        alias = folder / f"{n}{path.suffix if path.suffix.isascii() else ''}"
        alias.symlink_to(os.path.abspath(path))
        aliases[str(alias)] = path
    return aliases


def _read_embedded(
    exiftool: str,
    docs: list[tuple[Path, _Doc]],
    tmp: Path,
    level: int,
    timeout_s: float,
    problems: dict[Path, str],
    residue: dict[Path, list[_Found]],
) -> list[tuple[Path, _Doc]]:
    """Read the images extracted at `level - 1`; returns the ones embedded in them.

    A value exiftool cannot read as a file (a tone curve, an opaque maker-note
    block) has no metadata and is passed over; tags it did read are judged
    even when it also reports an error. At the deepest level nothing more is
    extracted, and a copy whose images go deeper still is not kept.
    """
    deepest = level == _MAX_NESTING
    out = tmp / f"out{level}"
    read: dict[str, tuple[_Doc, list[_Key]]] = {}
    by_name = {str(p): doc for p, doc in docs}
    for part in _chunks([p for p, _ in docs]):
        names = [str(p) for p in part]
        args = [*VERIFY_ARGS, *names]
        if not deepest:
            args += ["-execute", *_extract_args(out), *names]
        stdout, _ = _run(exiftool, args, len(part), timeout_s)
        for row in _json_rows(stdout):
            name = str(dict(row).get("SourceFile"))
            doc = by_name.get(name)
            if doc is None:
                continue
            binaries = _binary_tags(row)
            read[name] = (doc, binaries)
            if doc.copy in problems:
                continue
            if found := [_Found(doc, tag) for tag in _location_keys(k for k, _ in row)]:
                residue.setdefault(doc.copy, []).extend(found)
            if deepest and any(g2 == "Preview" for _, _, g2, _ in binaries):
                problems[doc.copy] = (
                    f"images embedded more than {_MAX_NESTING} levels deep could not be checked"
                )
    for path, doc in docs:
        if str(path) not in read:
            problems.setdefault(doc.copy, "an embedded image could not be read back to check it")
        path.unlink(missing_ok=True)
    return [] if deepest else _collect(out, read, tmp, level, problems)


def _collect(
    out: Path,
    read: dict[str, tuple[_Doc, list[_Key]]],
    tmp: Path,
    level: int,
    problems: dict[Path, str],
) -> list[tuple[Path, _Doc]]:
    """The files `_extract_args` wrote under `out`, each with the document it came from.

    Every embedded image exiftool listed (family-2 group `Preview`) must have
    been written out; a copy with one missing is not kept, as it was not
    checked. The files move to short names (`tmp/docs/<level>-<n>.<ext>`) so
    that the paths of images nested several levels deep stay short.
    """
    docs: list[tuple[Path, _Doc]] = []
    store = tmp / "docs"
    store.mkdir(exist_ok=True)
    for source, (doc, binaries) in read.items():
        if doc.copy in problems:
            continue
        folder = Path(f"{out}{source}")  # `-W` wrote to out/<the absolute path read>/
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
        written: Counter[tuple[str, str]] = Counter()
        for name in names:
            group, _, rest = name.partition("=")
            tag, _, rest = rest.partition("=")
            written[(group, tag)] += 1
            g0 = next((k[0] for k in binaries if k[1:2] == (group,) and k[3] == tag), "")
            ext = rest.rpartition(".")[2] if "." in rest else "bin"
            target = store / f"{level + 1}-{len(docs)}.{ext}"
            os.replace(folder / name, target)
            docs.append((target, _Doc(doc.copy, (*doc.chain, (g0, group, tag)))))
        listed = Counter((g1, tag) for _, g1, g2, tag in binaries if g2 == "Preview")
        if missing := [f"{g1}:{tag}" for (g1, tag), n in listed.items() if written[(g1, tag)] < n]:
            problems[doc.copy] = (
                f"an embedded image could not be extracted to check it: {', '.join(missing)}"
            )
    shutil.rmtree(out, ignore_errors=True)
    return docs


def _json_rows(stdout: bytes) -> list[list[tuple[str, Any]]]:
    """exiftool's `-j` output as (key, value) pairs per file, duplicate keys kept."""
    try:
        rows = json.loads(stdout.decode("utf-8", "surrogateescape") or "[]", object_pairs_hook=list)
    except json.JSONDecodeError:
        return []
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, list)]


def _binary_tags(row: list[tuple[str, Any]]) -> list[_Key]:
    """The (family 0, 1, 2 groups, tag) of every binary value in one `-j` row."""
    return [
        _split_key(key)
        for key, value in row
        if isinstance(value, str) and value.startswith("(Binary data ")
    ]


def _errors_by_file(stderr: str, by_name: Mapping[str, Path]) -> dict[Path, str]:
    """Map exiftool's `Error: <why> - <file>` lines to the files they name (`by_name`:
    the name as exiftool was given it -> the file to report)."""
    errors: dict[Path, str] = {}
    for line in stderr.splitlines():
        if not line.startswith("Error:"):
            continue
        parts = line[len("Error:") :].split(" - ")
        for k in range(1, len(parts)):
            path = by_name.get(" - ".join(parts[k:]))
            if path is not None:
                errors[path] = " - ".join(parts[:k]).strip()
                break
        else:
            log.warning("exiftool: %s", line)
    return errors


# -- judging tags -----------------------------------------------------------------


def _split_key(key: str) -> _Key:
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
    if name in LOCATION_TAGS.get(group, ()):
        return True
    prefixes = (*LOCATION_PREFIXES.get("*", ()), *LOCATION_PREFIXES.get(group, ()))
    return any(name.lower().startswith(p.lower()) for p in prefixes)


def _location_keys(keys: Iterable[str]) -> list[tuple[str, str, str]]:
    """(family 0, family 1, tag) of the keys that carry a location, in order, once each."""
    found: dict[tuple[str, str, str], None] = {}
    for key in keys:
        if key == "SourceFile":
            continue
        g0, g1, g2, name = _split_key(key)
        if is_location_tag(g1, name, g2):
            found[(g0, g1, name)] = None
    return list(found)


def location_tags(row: Mapping[str, Any]) -> list[str]:
    """The `Group:Tag` (family-1 group) keys of one exiftool `-j` row that carry a location.

    The row may come from `-G1` or `-G0:1:2`; tag names are judged by their
    identity, values never.
    """
    return [f"{g1}:{name}" for _, g1, name in _location_keys(row)]
