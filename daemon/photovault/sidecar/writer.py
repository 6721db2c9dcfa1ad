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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from photovault.sidecar import merge as merging
from photovault.sidecar import schema
from photovault.sidecar.model import SidecarContent
from photovault.sidecar.naming import is_own_temp, name_max, temp_name
from photovault.sidecar.reader import (
    MAX_SIDECAR_BYTES,
    Fingerprint,
    UnsafeSidecar,
    encoding_problem,
    fingerprint_bytes,
    read_regular,
)

log = logging.getLogger(__name__)

CONFIG_PATH = Path(__file__).with_name("exiftool.config")

#: exiftool JSON keys that differ between any two files and say nothing of content.
_SKIP_GROUPS = ("System:", "File:", "ExifTool:", "XMP-photovault:")
_SKIP_TAGS = {"SourceFile", "XMP-x:XMPToolkit"}
_KEYWORD_TAGS = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList")
STALE_TEMP_SECONDS = 3600
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


class _Conflict(Exception):
    """The sidecar changed under us; read and merge again."""


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
                except _Conflict:
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
        return WriteResult(status, sidecar, _current_fingerprint(sidecar), [why], attempts)

    def _write_once(
        self,
        photo: Path,
        sidecar: Path,
        content: SidecarContent,
        stored_size: tuple[int, int],
        orientation: int,
    ) -> WriteResult:
        photo_st = os.stat(photo)
        old, old_fp, old_mode = _read_snapshot(sidecar, self._max_bytes)
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
        _remove_stale_temps(sidecar)
        limit = name_max(sidecar.parent)
        tmp = sidecar.with_name(temp_name(sidecar.name, secrets.token_hex(6), limit))
        copy = None
        try:
            _write_temp(
                tmp, merged.data, _sidecar_mode(photo_st, old_mode), photo_st.st_gid, base.warnings
            )
            if self._verify_with_exiftool:
                if old is not None:  # exiftool reads our copy, never a path someone can swap
                    copy = sidecar.with_name(temp_name(sidecar.name, secrets.token_hex(6), limit))
                    _write_private(copy, old)
                problem = self._exiftool_check(copy, tmp, merged.removed)
                if problem:
                    return self._skip(sidecar, f"left untouched: exiftool check: {problem}", old_fp)
            self._before_commit(sidecar)
            _commit(tmp, sidecar, old, old_fp)
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


def exiftool_loss(
    before: dict[str, Any], after: dict[str, Any], removed: dict[str, list[str]] | None = None
) -> str | None:
    """Compare two ``exiftool -j -struct -G1 -n`` records of a sidecar.

    Every tag of `before` must be in `after` with the same value, except that our
    namespace is ignored, keyword lists may lose the items in `removed` and gain
    items, region lists may lose and gain regions carrying our FaceID (MWG) or
    listed in our MPRegions (MP), and a place field still holding the value our
    photovault:Written<Field> recorded is ours to change. Returns None, or the
    first difference.
    """
    removed = removed or {}
    owned_rects = set(_as_list(before.get("XMP-photovault:MPRegions")))
    ours = {
        f.exiftool
        for f in schema.PLACE_FIELDS
        if f.exiftool in before
        and str(before[f.exiftool]) == str(before.get(f"XMP-photovault:{f.record}"))
    }
    for tag, value in before.items():
        if tag in _SKIP_TAGS or tag.startswith(_SKIP_GROUPS) or tag in ours:
            continue
        if tag not in after and tag not in _KEYWORD_TAGS:  # an emptied keyword list goes
            return f"{tag} is gone"
        new = after.get(tag)
        if tag in _KEYWORD_TAGS:
            pool = _as_list(new)
            for item in _as_list(value):
                if item in removed.get(tag, []):
                    continue
                if item not in pool:
                    return f"{tag} lost {item!r}"
                pool.remove(item)
        elif tag == "XMP-mwg-rs:RegionInfo":
            problem = _struct_list_loss(value, new, "RegionList", _is_our_mwg_region)
            if problem:
                return f"{tag}: {problem}"
        elif tag == "XMP-MP:RegionInfoMP":
            problem = _struct_list_loss(
                value, new, "Regions", lambda r: r.get("Rectangle") in owned_rects
            )
            if problem:
                return f"{tag}: {problem}"
        elif value != new:
            return f"{tag} changed"
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list) else [value]


def _is_our_mwg_region(region: Any) -> bool:
    ext = region.get("Extensions") if isinstance(region, dict) else None
    return isinstance(ext, dict) and any(key.endswith("FaceID") for key in ext)


def _struct_list_loss(before: Any, after: Any, list_key: str, is_ours) -> str | None:
    if not isinstance(before, dict):
        return None if before == after else "changed"
    if not isinstance(after, dict):
        return "is no longer a struct"
    for key, value in before.items():
        if key == list_key:
            pool = [r for r in _as_list(after.get(key)) if not is_ours(r)]
            for region in _as_list(value):
                if is_ours(region):
                    continue
                if region not in pool:
                    return f"{key} lost or changed {json.dumps(region)[:80]}"
                pool.remove(region)
        elif after.get(key) != value:
            return f"{key} changed"
    return None


# ------------------------------------------------------------------ files
def _read_snapshot(
    path: Path, max_bytes: int
) -> tuple[bytes | None, Fingerprint | None, int | None]:
    """(bytes, fingerprint, permission bits) of the sidecar, Nones when missing.

    Raises `UnsafeSidecar` for a symbolic link or a non-regular file.
    """
    found = read_regular(path, max_bytes)
    if found is None:
        return None, None, None
    data, st = found
    fp = Fingerprint(st.st_mtime_ns, st.st_size, hashlib.sha256(data).hexdigest())
    return data, fp, stat.S_IMODE(st.st_mode)


def _current_fingerprint(path: Path) -> Fingerprint | None:
    try:
        found = read_regular(path, MAX_SIDECAR_BYTES)
    except (OSError, UnsafeSidecar):
        return None
    return None if found is None else fingerprint_bytes(path, found[0])


def _sidecar_mode(photo_st: os.stat_result, old_mode: int | None) -> int:
    """Never more readable than the photo: a new sidecar gets the photo's read and
    write bits, an existing one keeps its bits less the read bits the photo lacks."""
    photo_mode = stat.S_IMODE(photo_st.st_mode)
    if old_mode is None:
        return photo_mode & 0o666
    return old_mode & 0o777 & ~(0o444 & ~photo_mode)


def _write_temp(tmp: Path, data: bytes, mode: int, gid: int, warnings: list[str]) -> None:
    """Create `tmp` exclusively with `mode` and the photo's group `gid`, fsynced."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            try:
                os.fchown(fh.fileno(), -1, gid)
            except PermissionError:
                warnings.append("could not give the sidecar the photo's group")
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_private(path: Path, data: bytes) -> None:
    """A scratch copy only vaultd's user can read (for exiftool's comparison)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def _commit(tmp: Path, sidecar: Path, old: bytes | None, old_fp: Fingerprint | None) -> None:
    """Rename `tmp` over `sidecar` unless the sidecar changed since we read it."""
    if old is None:
        try:
            os.link(tmp, sidecar)  # atomic create-if-absent
        except FileExistsError as err:
            raise _Conflict() from err
        except OSError:  # filesystems without hard links
            if os.path.lexists(sidecar):
                raise _Conflict() from None
            os.replace(tmp, sidecar)
    else:
        try:
            now_data, now_fp, _mode = _read_snapshot(sidecar, len(old) + 1)
        except UnsafeSidecar as err:  # became a link meanwhile: read again, then skip
            raise _Conflict() from err
        if (
            now_data != old
            or now_fp is None
            or old_fp is None
            or (now_fp.mtime_ns, now_fp.size) != (old_fp.mtime_ns, old_fp.size)
        ):
            raise _Conflict()
        os.replace(tmp, sidecar)
    _fsync_dir(sidecar.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some network filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(sidecar: Path) -> None:
    """Temp files a crash left behind next to this sidecar (older than an hour)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    prefix = f".{sidecar.name}."
    with contextlib.suppress(OSError), os.scandir(sidecar.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and is_own_temp(entry.name):
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        os.unlink(entry.path)


def remove_stale_temps(
    root: Path,
    *,
    before: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Remove the temp files a crash (``kill -9``) left anywhere under `root`.

    Only regular files whose name is exactly our temp pattern (`naming.is_own_temp`)
    and, when `before` is given, last modified before that time; symbolic links
    are neither followed nor removed. Errors (a vanished folder, no permission)
    skip the entry. Returns how many files were removed; `should_stop` ends the
    walk early (shutdown).
    """
    removed = 0
    stack = [os.fsencode(root)]
    while stack and not should_stop():
        folder = stack.pop()
        try:
            with os.scandir(folder) as found:
                entries = list(found)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if not is_own_temp(entry.name):
                    continue
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or (before is not None and st.st_mtime >= before):
                    continue
                os.unlink(entry.path)
            except OSError as err:
                log.debug("stale temp %r not removed: %s", entry.path, err)
                continue
            removed += 1
            log.info(
                "removed stale sidecar temp file %s", entry.path.decode("utf-8", "backslashreplace")
            )
    return removed
