"""Strip location from the copies with exiftool and read them back, embedded images included.

One exiftool run per chunk of copies deletes the tags, reads every copy back
and extracts its embedded images, which are read in turn; copies that keep a
location get further, harsher passes. How and why is told in `ops.export`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photovault.ops.export_report import ExportError
from photovault.ops.export_tags import Key, location_keys, split_key
from photovault.sidecar.writer import CONFIG_PATH

log = logging.getLogger(__name__)

#: exiftool arguments for the read-back: every tag (-a) named by family 0, 1
#: and 2 groups (-G0:1:2, so a key reads `EXIF:GPS:Location:GPSLatitude`),
#: numbers as numbers (-n), embedded and timed data included (-ee: a video's
#: GPS track reads `QuickTime:Track3:Location:GPSLatitude`).
VERIFY_ARGS: tuple[str, ...] = ("-j", "-G0:1:2", "-a", "-n", "-ee")

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


def check_exiftool(exiftool: str) -> None:
    """Fail before copying: without exiftool the copies would keep their location."""
    if shutil.which(exiftool) is None:
        raise ExportError(
            f"cannot run exiftool ({exiftool}): not found; install libimage-exiftool-perl"
        )


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
        where makers keep tags exiftool cannot delete one by one. A motion
        photo's video taken out takes Google's XMP pointing at it along.
        """
        g0, g1, name = self.doc.chain[0] if self.doc.chain else self.tag
        args = [f"-{g1}:{name}="]
        if g0 in _TRAILER_GROUPS or g1 == "Samsung" or harsh:
            args += ["-trailer:all=", "-MPF:all="]
        if self.doc.chain and "Video" in name:  # a motion photo's video: no pointer to it
            args += ["-XMP-GCamera:MicroVideo*=", "-XMP-GCamera:MotionPhoto*="]
        if harsh:
            args.append("-makernotes:all=")
        return tuple(args)


def strip_and_verify(
    copies: list[Path],
    exiftool: str,
    timeout_s: float,
    strip_args: Sequence[str],
    read_only: Collection[Path] = frozenset(),
    dropped: dict[Path, list[str]] | None = None,
    unremoved: set[Path] | None = None,
) -> dict[Path, str]:
    """Strip location from `copies`; returns the copies that must not be kept, with why.

    `strip_args` are the first pass's deletions (`export_tags.STRIP_ARGS`).
    `read_only` copies are in a format exiftool cannot write (videos ffmpeg
    already cleaned, `export_video`): they are only read back, and one that
    still carries a location is not kept. `dropped` gets, per copy, the
    embedded images and videos (a motion photo's video) that carried a
    location and are therefore taken out of it, so the report can say so.
    `unremoved` gets the copies refused only because location tags stayed in
    them (a video copy may then be remuxed and tried again).
    """
    problems: dict[Path, str] = {}
    if not copies:
        return problems
    residue = _strip_pass(exiftool, strip_args, copies, timeout_s, problems, read_only)
    for path in [p for p in residue if p in read_only]:
        tags = ", ".join(dict.fromkeys(f.describe() for f in residue.pop(path)))
        if unremoved is not None and path not in problems:
            unremoved.add(path)
        problems.setdefault(
            path, f"location tags could not be removed (exiftool cannot write this format): {tags}"
        )
    if dropped is not None:
        for path, found in residue.items():
            inside = [
                f"{g1}:{name}" for f in found if f.doc.chain for _, g1, name in f.doc.chain[:1]
            ]
            if inside:
                dropped[path] = list(dict.fromkeys(inside))
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
        if unremoved is not None:
            unremoved.add(path)
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
    `-ee` takes embedded documents too: the video of a Google motion photo
    (`File:EmbeddedVideo`) is only extracted with it.
    """
    return ["-q", "-a", "-ee", "-b", "-W", f"{out}/%d%f.%e/%g1=%t=%c.%s", "--Wext", "txt"]


def _strip_pass(
    exiftool: str,
    tag_args: Sequence[str],
    paths: list[Path],
    timeout_s: float,
    problems: dict[Path, str],
    read_only: Collection[Path] = frozenset(),
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
            docs = _write_and_read(
                exiftool, tag_args, chunk, tmp, timeout_s, problems, residue, read_only
            )
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
    read_only: Collection[Path] = frozenset(),
) -> list[tuple[Path, _Doc]]:
    """Strip, read back and extract one chunk of copies; returns the embedded files.

    The copies are rewritten under their own names, given as raw bytes
    (absolute, so never read as an option: "-x.jpg"), and read back under
    their `_aliases`; `read_only` copies are only read back.
    """
    names = {os.path.abspath(p): p for p in chunk if p not in read_only}
    aliases = _aliases(chunk, tmp)
    out = tmp / "out0"
    write: list[str | bytes] = ["-m", "-q", "-overwrite_original", "-P", *tag_args]
    write += [*(os.fsencode(name) for name in names), "-execute"]
    stdout, stderr = _run(
        exiftool,
        [
            *(write if names else []),
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
    read: dict[str, tuple[_Doc, list[Key]]] = {}
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
        if hits := [_Found(doc, tag) for tag in location_keys(k for k, _ in row)]:
            residue[path] = hits
    for alias, path in aliases.items():
        if alias not in read:
            problems.setdefault(path, "cannot be read back to check it")
    return _collect(out, read, tmp, 0, problems)


def _aliases(chunk: list[Path], tmp: Path) -> dict[str, Path]:
    """A plain name for each copy, a symlink in `tmp`: alias -> copy.

    exiftool reads a copy back through its alias, so every JSON row and error
    line names it exactly whatever the copy's own name (see the notes in `ops.export`).
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
    read: dict[str, tuple[_Doc, list[Key]]] = {}
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
            if found := [_Found(doc, tag) for tag in location_keys(k for k, _ in row)]:
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
    read: dict[str, tuple[_Doc, list[Key]]],
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


def _binary_tags(row: list[tuple[str, Any]]) -> list[Key]:
    """The (family 0, 1, 2 groups, tag) of every binary value in one `-j` row."""
    return [
        split_key(key)
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
