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
2. Strip. One exiftool run over all copies (split only when the argument
   list would grow too long) deletes the EXIF GPS IFD, all XMP
   `exif:GPS*`, IPTC City / Sub-location / Province-State / Country / location
   codes, XMP photoshop City/State/Country, iptcCore Location/CountryCode and
   the creator's contact address, iptcExt LocationCreated/LocationShown, and
   any other tag in any group (Apple, Google, Microsoft, Darwin Core, maker
   notes where exiftool can write them) whose name says GPS, location, city,
   country, province, state, latitude, longitude, locality or landmark.
3. Verify. In the same exiftool run (a second command after `-execute`, so
   exiftool starts once), every copy is read back (`exiftool -j -G1 -a -n -ee`) and its tag
   names are searched for the same words. A copy that still carries one gets
   a second, harsher pass (its maker notes are dropped and the remaining tags
   deleted by exact name); if that does not clean it either, the copy is
   deleted and reported as failed. Nothing with a location is left behind.

What is *not* copied: sidecars (`.xmp`, `.aae`, Google Takeout `.json`) and any
other non-photo file. They often hold location too (Lightroom and Takeout write
GPS into them), so they are listed as skipped rather than copied unfiltered.
What is not detected: a location written as free text in a caption or
keyword ("Dinner in Paris"), and the place visible in the picture itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photovault.media.formats import is_supported

log = logging.getLogger(__name__)

#: exiftool arguments that delete location data. Deleting by wildcard name
#: covers groups we do not list (exiftool expands `*` over every writable tag).
STRIP_ARGS: tuple[str, ...] = (
    "-gps:all=",                          # the EXIF GPS IFD, whole
    "-xmp-exif:gps*=",                    # XMP copies of the GPS tags
    "-*gps*=",                            # GPS tags in any other group (QuickTime, maker notes)
    "-*location*=",                       # IPTC Sub-location, ContentLocation*, iptcCore
                                          # Location, iptcExt LocationCreated/Shown, xmpDM
    "-*city*=",                           # IPTC City, photoshop:City, iptcExt ...City
    "-*country*=",                        # Country-PrimaryLocation*, CountryCode, ...
    "-*province*=",                       # IPTC Province-State, ...ProvinceState
    "-State=",                            # photoshop:State, Panasonic State
    "-*latitude*=",
    "-*longitude*=",
    "-*locality*=",                       # Darwin Core, iptcExt
    "-*landmark*=",                       # Panasonic Landmark
    "-XMP-iptcCore:CreatorContactInfo=",  # the photographer's postal address
)

#: A tag name matching this still carries a location (checked on the name
#: without its group; `-n` output, so values are never parsed here).
LOCATION_TAG = re.compile(
    r"gps|location|city|country|province|latitude|longitude|locality|landmark|^state$",
    re.IGNORECASE,
)

#: exiftool arguments for the read-back: every tag (-a) with its group (-G1),
#: numbers as numbers (-n), embedded documents too (-ee: MPF previews).
VERIFY_ARGS: tuple[str, ...] = ("-j", "-G1", "-a", "-n", "-ee")

NOT_A_PHOTO = "not a photo (sidecars and other files are not copied)"

# Keep one exiftool command line well under ARG_MAX (2 MiB on Linux).
_MAX_ARG_BYTES = 120_000
_READ_MARK = "::photovault-verify::"
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
            copy.unlink(missing_ok=True)
        raise
    for copy, source in copies.items():
        problem = outcome.get(copy)
        if problem is None:
            report.copied.append(ExportedFile(source, copy))
            continue
        copy.unlink(missing_ok=True)
        log.warning("export: %s: %s (copy removed)", source, problem)
        report.failed.append((source, problem))
    log.info(
        "export to %s: %d copied without location, %d failed, %d skipped",
        dest, len(report.copied), len(report.failed), len(report.skipped),
    )
    return report


# -- planning and copying ----------------------------------------------------


def _plan(sources: list[Path], dest: Path, report: ExportReport) -> list[tuple[Path, Path]]:
    """(source file, wanted copy path) for every photo; the rest goes to `report`."""
    dest_real = dest.resolve()
    missing = [s for s in sources if not os.path.lexists(s)]
    if missing:
        raise ExportError(
            "no such file or folder: " + ", ".join(str(s) for s in missing)
        )
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


# -- exiftool ------------------------------------------------------------------


def _check_exiftool(exiftool: str) -> None:
    """Fail before copying: without exiftool the copies would keep their location."""
    if shutil.which(exiftool) is None:
        raise ExportError(
            f"cannot run exiftool ({exiftool}): not found; install libimage-exiftool-perl"
        )


def _strip_and_verify(copies: list[Path], exiftool: str, timeout_s: float) -> dict[Path, str]:
    """Strip location from `copies`; returns the copies that must not be kept, with why."""
    problems: dict[Path, str] = {}
    if not copies:
        return problems
    residue = _strip_pass(exiftool, STRIP_ARGS, copies, timeout_s, problems)
    if residue:
        # Second pass, only for the few that kept something: drop the maker
        # notes (some makers store places there in tags exiftool cannot delete
        # one by one) and delete what is left by its exact group and name.
        names = sorted({tag for tags in residue.values() for tag in tags})
        args = ("-makernotes:all=", *(f"-{tag}=" for tag in names))
        still = _strip_pass(exiftool, args, list(residue), timeout_s, problems)
        for path, tags in still.items():
            problems[path] = f"location tags could not be removed: {', '.join(tags)}"
    return problems


def _chunks(paths: list[Path]) -> Iterable[list[Path]]:
    chunk: list[Path] = []
    size = 0
    for path in paths:
        length = 2 * (len(os.fsencode(path)) + 1)  # named in both commands
        if chunk and size + length > _MAX_ARG_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(path)
        size += length
    if chunk:
        yield chunk


def _strip_pass(
    exiftool: str,
    tag_args: Sequence[str],
    paths: list[Path],
    timeout_s: float,
    problems: dict[Path, str],
) -> dict[Path, list[str]]:
    """Delete tags in place and read the files back, in one exiftool run per chunk.

    Returns the files that still carry location tags (with the tags). Files
    exiftool could not rewrite or read back go to `problems`: unchecked means
    not kept. `-m` lets exiftool write files with minor format problems
    (common in phone photos); the read-back decides whether the result is
    acceptable. The second command (after `-execute`) marks its start on
    stderr, so errors are told apart by the command that raised them.
    """
    residue: dict[Path, list[str]] = {}
    for chunk in _chunks(paths):
        names = [os.path.abspath(p) for p in chunk]  # never read as an option ("-x.jpg")
        cmd = [
            exiftool, "-m", "-q", "-overwrite_original", "-P", *tag_args, *names,
            "-execute", "-echo2", _READ_MARK, *VERIFY_ARGS, *names,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 0.5 * len(chunk))
        except subprocess.TimeoutExpired as exc:
            raise ExportError(
                f"exiftool took longer than {exc.timeout:.0f} s; export stopped"
            ) from exc
        except OSError as exc:
            raise ExportError(f"cannot run exiftool ({exiftool}): {exc}") from exc
        stderr = proc.stderr.decode("utf-8", "replace")
        write_err, _, read_err = stderr.partition(_READ_MARK)
        for path, why in _errors_by_file(write_err, chunk).items():
            problems[path] = f"exiftool could not rewrite it: {why}"
        for path, why in _errors_by_file(read_err, chunk).items():
            problems.setdefault(path, f"cannot be read back to check it: {why}")
        try:
            rows = json.loads(proc.stdout.decode("utf-8", "surrogateescape") or "[]")
        except json.JSONDecodeError:
            rows = []
        by_name = dict(zip(names, chunk, strict=True))
        seen: set[Path] = set()
        for row in rows if isinstance(rows, list) else []:
            path = by_name.get(str(row.get("SourceFile"))) if isinstance(row, dict) else None
            if path is None or path in problems:
                continue
            seen.add(path)
            error = next((v for k, v in row.items() if k.endswith(":Error")), None)
            if error is not None:
                problems[path] = f"cannot be read back to check it: {error}"
            elif tags := location_tags(row):
                residue[path] = tags
        for path in chunk:
            if path not in seen:
                problems.setdefault(path, "cannot be read back to check it")
    return residue


def _errors_by_file(stderr: str, paths: list[Path]) -> dict[Path, str]:
    """Map exiftool's `Error: <why> - <file>` lines to the files they name."""
    by_name = {os.path.abspath(p): p for p in paths}
    errors: dict[Path, str] = {}
    for line in stderr.splitlines():
        if not line.startswith("Error:"):
            continue
        parts = line[len("Error:"):].split(" - ")
        for k in range(1, len(parts)):
            path = by_name.get(" - ".join(parts[k:]))
            if path is not None:
                errors[path] = " - ".join(parts[:k]).strip()
                break
        else:
            log.warning("exiftool: %s", line)
    return errors


def location_tags(row: dict[str, Any]) -> list[str]:
    """The `Group:Tag` keys of one `exiftool -j -G1` row that carry a location."""
    found = []
    for key in row:
        name = key.rsplit(":", 1)[-1]
        if key != "SourceFile" and LOCATION_TAG.search(name):
            found.append(key)
    return found
