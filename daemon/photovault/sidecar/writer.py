"""Write our content into a photo's sidecar: merge, verify, commit atomically.

Strategy (why foreign data provably survives): `merge.merge` splices bytes, so
everything we do not own stays byte-for-byte where it was. Before a merged file
replaces the old one it must pass two independent checks:

1. our RDF reader: the foreign view (everything minus what our ownership lists
   name) of old and new packet is equal, array kinds and language qualifiers
   included (done inside `merge.merge`);
2. exiftool: ``exiftool -j -struct -G1 -n`` of old and new agree on every tag
   except the items we removed and our own namespace, and exiftool reads the
   new file without a new warning or error.

A file that fails either check, or cannot be parsed safely (malformed XML,
UTF-16, over the size limit, array properties written as attributes), is left
untouched and the `WriteResult` says why; the photo is still indexed.

Commit: temp file in the sidecar's folder, fsync, permission bits and the
photo's group, then a check that the sidecar is still the version we read (size,
mtime, SHA-256) and `os.replace` (or a no-clobber `os.link` for a new sidecar),
then an fsync of the folder. If someone changed the sidecar meanwhile we read and
merge again. A crash leaves the old or the new file, never a partial one; at
worst a stale ``.NAME.xmp.pvtmp-XXXXXXXXXXXX.xmp`` temp file, removed by a later
write of that sidecar or by `remove_stale_temps` when the stage starts. The
photo is only ever `stat`-ed.

Permissions: a sidecar is never more readable than its photo. A new one gets the
photo's read and write bits (``photo mode & 0o666``); an existing one keeps its
own bits less any read bit the photo lacks. A sidecar that is a symbolic link or
not a regular file is never read (``O_NOFOLLOW``) nor replaced: it is skipped
with a warning naming it. exiftool checks a private copy of the bytes we merged,
never the sidecar's path, so a link swapped in meanwhile is not followed either.

File names are bytes on Linux and need not be UTF-8 (b'\\xff\\xfe-bird.jpg'):
pyexiftool would encode a str argument as UTF-8 and fail on such a name, so the
paths exiftool reads go to it as their raw bytes (`os.fsencode`, see `_arg`, the
same approach as `photovault.media.metadata`) and its answer is read as bytes.

Permanent conditions are not faults: a sidecar path that is a folder, runs
through a file (ENOTDIR), loops through links (ELOOP) or is too long for the
system (ENAMETOOLONG) gives "skipped" with a warning naming the file and the
reason, not "failed": retrying cannot help until someone changes the share.

Thread-safety: a `SidecarWriter` may be shared between threads; `write` calls are
serialized by one lock, because the single exiftool process answers one command
at a time. Use one writer per process.

Where the parts live: the file steps (snapshot, temp file, permission bits,
commit, stale temps) are in `commit`, exiftool's comparison in `losscheck`;
`remove_stale_temps` and `exiftool_loss` are importable from here as well.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from photovault.sidecar import merge as merging
from photovault.sidecar.commit import (
    Conflict,
    commit,
    current_fingerprint,
    read_snapshot,
    remove_stale_temps_beside,
    sidecar_mode,
    write_private,
    write_temp,
)
from photovault.sidecar.commit import remove_stale_temps as remove_stale_temps  # writer's API
from photovault.sidecar.losscheck import exiftool_loss
from photovault.sidecar.model import SidecarContent
from photovault.sidecar.naming import name_max, temp_name
from photovault.sidecar.reader import (
    MAX_SIDECAR_BYTES,
    Fingerprint,
    UnsafeSidecar,
    encoding_problem,
    fingerprint_bytes,
)

log = logging.getLogger(__name__)

CONFIG_PATH = Path(__file__).with_name("exiftool.config")

#: OSError numbers that say the sidecar can never be written where it is; retrying
#: would not help, so the sidecar is skipped with the reason, not failed.
PERMANENT_ERRNOS = {
    errno.EISDIR: "a folder is in the way",
    errno.ENOTDIR: "a file is in the way of its folder",
    errno.ELOOP: "its path loops through symbolic links",
    errno.ENAMETOOLONG: "its path is longer than the system allows",
}

Status = Literal["written", "unchanged", "skipped", "failed"]


class ExifToolUnavailable(Exception):
    """exiftool could not be started or keeps failing."""


def permanent_reason(err: BaseException, path: Path | str | bytes | None = None) -> str | None:
    """Why `err` means the sidecar can never be written there, or None for a fault
    worth retrying (disk full, permissions, I/O). Names the file when given."""
    if not isinstance(err, OSError) or err.errno not in PERMANENT_ERRNOS:
        return None
    where = path if path is not None else err.filename
    if isinstance(where, int) or not where:
        where = None
    name = _shown(os.path.basename(os.fsencode(where))) if where is not None else "the sidecar"
    why = PERMANENT_ERRNOS[err.errno]
    if err.errno == errno.ENAMETOOLONG and where is not None:
        why = f"its path is {len(os.fsencode(where))} bytes, longer than the system allows"
    return (
        f"{name} cannot be written: {err.strerror} ({why}); skipped, not retried "
        "(`vaultctl sidecars rewrite` tries again)"
    )


def _shown(path: Path | str | bytes) -> str:
    """A path as text for messages: undecodable bytes as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _arg(path: Path | str | bytes) -> bytes:
    """The path as exiftool gets it: its raw bytes (names need not be UTF-8).

    exiftool reads its arguments one per line: a relative path gets ``./`` (no
    leading dash, blank or ``#`` that would read as an option, or be trimmed or
    taken for a comment), and a path holding a line break is sent as exiftool's
    ``#[CSTR]`` C string. That form cannot carry ``$`` or ``@`` (exiftool 12
    keeps a backslash before them), so such a path raises ValueError.
    """
    raw = os.fsencode(path)
    if not raw.startswith(b"/"):
        raw = b"./" + raw
    if b"\n" not in raw and b"\r" not in raw:
        return raw
    if b"$" in raw or b"@" in raw:
        raise ValueError(
            f"{_shown(raw)} holds a line break and a $ or @: exiftool cannot be given that path"
        )
    escaped = raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return b"#[CSTR]" + escaped


@dataclass
class WriteResult:
    """Outcome of one `SidecarWriter.write`.

    status: "written" (new content committed), "unchanged" (the sidecar already
    held exactly this), "skipped" (left untouched on purpose: bad or unsafe input,
    see `warnings`), "failed" (an I/O or tool error; retry later).
    `fingerprint` describes the sidecar now on disk as we left it (None when there
    is none); the watcher compares it with what it sees to ignore our own write.
    """

    status: Status
    sidecar: Path
    fingerprint: Fingerprint | None = None
    warnings: list[str] = field(default_factory=list)
    attempts: int = 1
    faces_written: int = 0
    faces_skipped: int = 0
    #: Keyword paths of ours a person removed from the sidecar (see `merge`).
    rejected: list[tuple[str, ...]] = field(default_factory=list)
    #: Place fields of ours a person changed or removed: theirs from now on.
    person_fields: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("written", "unchanged")


class SidecarWriter:
    """Long-lived sidecar writer holding one ``exiftool -stay_open`` process.

    The process is started on first use and restarted once when a command fails.
    `exiftool` is the executable, `verify_with_exiftool=False` skips check 2 (only
    for environments without exiftool; our own check still runs).
    """

    def __init__(
        self,
        *,
        exiftool: str = "exiftool",
        config: Path = CONFIG_PATH,
        verify_with_exiftool: bool = True,
        max_attempts: int = 3,
        max_bytes: int = MAX_SIDECAR_BYTES,
    ) -> None:
        self._executable = exiftool
        self._config = Path(config)
        self._verify_with_exiftool = verify_with_exiftool
        self._max_attempts = max_attempts
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._et: Any = None

    # ------------------------------------------------------------ exiftool
    def _start(self) -> Any:
        import exiftool  # pyexiftool; imported here so reading needs no exiftool

        et = exiftool.ExifTool(
            executable=self._executable, common_args=[], config_file=str(self._config)
        )
        try:
            et.run()
        except Exception as err:  # FileNotFoundError, ExifToolVersionError, ...
            raise ExifToolUnavailable(f"cannot start exiftool: {err}") from err
        log.debug("exiftool started (pid %s)", getattr(et, "_process", None) and et._process.pid)
        return et

    def _execute(self, *args: str | bytes) -> str:
        """Run one exiftool command; restart the process once on failure.

        Arguments may be bytes (paths, see `_arg`); the answer is read as bytes
        (exiftool's messages name files in their raw bytes) and decoded here.
        """
        for attempt in (1, 2):
            try:
                if self._et is None or not self._et.running:
                    self._et = self._start()
                out = self._et.execute(*args, raw_bytes=True)
                return out.decode("utf-8", "replace") if isinstance(out, bytes) else out
            except ExifToolUnavailable:
                raise
            except Exception as err:  # broken pipe, process died, decode error
                log.warning("exiftool failed (%s), restarting (attempt %d)", err, attempt)
                self._stop()
        raise ExifToolUnavailable("exiftool failed twice in a row")

    def _stop(self) -> None:
        et, self._et = self._et, None
        if et is not None:
            with contextlib.suppress(Exception):
                et.terminate()

    def close(self) -> None:
        """Stop the exiftool process (the writer restarts it if used again)."""
        with self._lock:
            self._stop()

    def __enter__(self) -> SidecarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_json(self, *paths: Path) -> list[dict[str, Any]]:
        """``exiftool -j -struct -G1 -n`` of files, numbers kept as their text."""
        out = self._execute("-j", "-struct", "-G1", "-n", *(_arg(p) for p in paths))
        if not out.strip():
            return []
        return json.loads(out, parse_float=str, parse_int=str)

    # ------------------------------------------------------------ writing
    def write(
        self,
        photo: Path,
        sidecar: Path,
        content: SidecarContent,
        stored_size: tuple[int, int],
        orientation: int,
    ) -> WriteResult:
        """Merge `content` into `sidecar` (created if missing) for `photo`.

        `stored_size` is the photo's (width, height) as stored and `orientation`
        its EXIF orientation; face boxes in `content` are in the oriented frame.
        Never raises for bad sidecar content or I/O trouble: see `WriteResult`.
        """
        photo, sidecar = Path(photo), Path(sidecar)
        if os.path.islink(sidecar):
            return self._skip(
                sidecar, f"{sidecar.name} is a symbolic link; not followed, left untouched", None
            )
        try:
            same = sidecar.resolve() == photo.resolve()
        except (OSError, RuntimeError) as err:  # RuntimeError: a symbolic link loop
            why = permanent_reason(err, sidecar) or f"{_shown(sidecar)} cannot be resolved: {err}"
            return self._skip(sidecar, why, None)
        if sidecar.suffix.lower() != ".xmp" or same:
            raise ValueError(f"refusing to write {sidecar}: not an .xmp sidecar")
        with self._lock:
            for attempt in range(1, self._max_attempts + 1):
                try:
                    result = self._write_once(photo, sidecar, content, stored_size, orientation)
                except Conflict:
                    log.info("sidecar %s changed while we merged; merging again", _shown(sidecar))
                    continue
                except UnsafeSidecar as err:
                    return self._skip(sidecar, str(err), None)
                except ExifToolUnavailable as err:
                    return self._fail(sidecar, "failed", str(err), attempt)
                except OSError as err:
                    permanent = permanent_reason(err, sidecar)
                    if permanent is not None:
                        return self._skip(sidecar, permanent, None)
                    return self._fail(sidecar, "failed", f"I/O error: {err}", attempt)
                result.attempts = attempt
                return result
            return self._fail(
                sidecar,
                "failed",
                "sidecar kept changing while we wrote; try later",
                self._max_attempts,
            )

    def _fail(self, sidecar: Path, status: Status, why: str, attempts: int) -> WriteResult:
        log.warning("sidecar %s not written: %s", _shown(sidecar), why)
        return WriteResult(status, sidecar, current_fingerprint(sidecar), [why], attempts)

    def _write_once(
        self,
        photo: Path,
        sidecar: Path,
        content: SidecarContent,
        stored_size: tuple[int, int],
        orientation: int,
    ) -> WriteResult:
        photo_st = os.stat(photo)
        old, old_fp, old_mode = read_snapshot(sidecar, self._max_bytes)
        if old is not None:
            problem = encoding_problem(old)
            if len(old) > self._max_bytes:
                problem = f"sidecar is over the {self._max_bytes} byte limit; left untouched"
            if problem:
                return self._skip(sidecar, problem, old_fp)
        try:
            merged = merging.merge(old, content, stored_size, orientation)
        except merging.MergeRefused as err:
            return self._skip(sidecar, f"left untouched: {err}", old_fp)
        base = WriteResult(
            "unchanged",
            sidecar,
            old_fp,
            list(merged.warnings),
            faces_written=merged.faces_written,
            faces_skipped=merged.faces_skipped,
            rejected=merged.rejected,
            person_fields=merged.person_fields,
        )
        if old is not None and merged.data == old:
            return base
        if sidecar.parent != photo.parent:  # the mirror tree
            sidecar.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps_beside(sidecar)
        limit = name_max(sidecar.parent)
        tmp = sidecar.with_name(temp_name(sidecar.name, secrets.token_hex(6), limit))
        copy = None
        try:
            write_temp(
                tmp, merged.data, sidecar_mode(photo_st, old_mode), photo_st.st_gid, base.warnings
            )
            if self._verify_with_exiftool:
                if old is not None:  # exiftool reads our copy, never a path someone can swap
                    copy = sidecar.with_name(temp_name(sidecar.name, secrets.token_hex(6), limit))
                    write_private(copy, old)
                problem = self._exiftool_check(copy, tmp, merged.removed)
                if problem:
                    return self._skip(sidecar, f"left untouched: exiftool check: {problem}", old_fp)
            self._before_commit(sidecar)
            commit(tmp, sidecar, old, old_fp)
        finally:
            for path in (tmp, copy):
                if path is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        base.status = "written"
        base.fingerprint = fingerprint_bytes(sidecar, merged.data)
        for warning in base.warnings:
            log.info("sidecar %s: %s", _shown(sidecar), warning)
        return base

    def _before_commit(self, sidecar: Path) -> None:
        """Seam for tests that simulate another program writing meanwhile."""

    def _skip(self, sidecar: Path, why: str, fp: Fingerprint | None) -> WriteResult:
        log.warning("sidecar %s: %s", _shown(sidecar), why)
        return WriteResult("skipped", sidecar, fp, [why])

    def _exiftool_check(
        self, old: Path | None, new: Path, removed: dict[str, list[str]]
    ) -> str | None:
        """None when exiftool sees every foreign tag of `old` unchanged in `new`."""
        paths = [p for p in (old, new) if p is not None]
        try:
            data = self.read_json(*paths)
        except ValueError as err:  # a path exiftool cannot be given (see `_arg`)
            return str(err)
        if len(data) != len(paths):
            return "exiftool returned no data"
        before = data[0] if old is not None else {}
        after = data[-1]
        if "ExifTool:Error" in after:
            return f"exiftool cannot read the result: {after['ExifTool:Error']}"
        if after.get("ExifTool:Warning") not in (None, before.get("ExifTool:Warning")):
            return f"exiftool warns about the result: {after['ExifTool:Warning']}"
        return exiftool_loss(before, after, removed)
