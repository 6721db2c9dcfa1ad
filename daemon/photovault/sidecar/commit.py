"""A sidecar on disk: read a snapshot, write a temp file, commit it atomically.

Commit: temp file in the sidecar's folder, fsync, permission bits and the
photo's group, then a check that the sidecar is still the version we read (size,
mtime, SHA-256) and `os.replace` (or a no-clobber `os.link` for a new sidecar),
then an fsync of the folder. If someone changed the sidecar meanwhile `commit`
raises `Conflict` and the writer reads and merges again. A crash leaves the old
or the new file, never a partial one; at worst a stale
``.NAME.xmp.pvtmp-XXXXXXXXXXXX.xmp`` temp file, removed by a later write of that
sidecar (`remove_stale_temps_beside`) or by `remove_stale_temps` when the stage
starts.

Permissions: a sidecar is never more readable than its photo (`sidecar_mode`).
A symbolic link or a non-regular file is never read (``O_NOFOLLOW``, see
`reader.read_regular`) nor replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from photovault.sidecar.naming import is_own_temp
from photovault.sidecar.reader import (
    MAX_SIDECAR_BYTES,
    Fingerprint,
    UnsafeSidecar,
    fingerprint_bytes,
    read_regular,
)

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 3600


class Conflict(Exception):
    """The sidecar changed under us; read and merge again."""


def read_snapshot(
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


def current_fingerprint(path: Path) -> Fingerprint | None:
    try:
        found = read_regular(path, MAX_SIDECAR_BYTES)
    except (OSError, UnsafeSidecar):
        return None
    return None if found is None else fingerprint_bytes(path, found[0])


def fingerprint_matches(path: Path, fp: tuple[int, int, str] | None) -> bool:
    """Whether `path` is still the file recorded as (mtime_ns, size, SHA-256) `fp`:
    how the stage recognises its own write when the watcher reports it."""
    if fp is None:
        return False
    try:
        st = os.lstat(path)
        if (st.st_mtime_ns, st.st_size) != (fp[0], fp[1]):
            return False
        found = read_regular(path, MAX_SIDECAR_BYTES)
    except (OSError, UnsafeSidecar):
        return False
    return found is not None and hashlib.sha256(found[0]).hexdigest() == fp[2]


def sidecar_mode(photo_st: os.stat_result, old_mode: int | None) -> int:
    """Never more readable than the photo: a new sidecar gets the photo's read and
    write bits, an existing one keeps its bits less the read bits the photo lacks."""
    photo_mode = stat.S_IMODE(photo_st.st_mode)
    if old_mode is None:
        return photo_mode & 0o666
    return old_mode & 0o777 & ~(0o444 & ~photo_mode)


def write_temp(tmp: Path, data: bytes, mode: int, gid: int, warnings: list[str]) -> None:
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


def write_private(path: Path, data: bytes) -> None:
    """A scratch copy only vaultd's user can read (for exiftool's comparison)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def commit(tmp: Path, sidecar: Path, old: bytes | None, old_fp: Fingerprint | None) -> None:
    """Rename `tmp` over `sidecar` unless the sidecar changed since we read it."""
    if old is None:
        try:
            os.link(tmp, sidecar)  # atomic create-if-absent
        except FileExistsError as err:
            raise Conflict() from err
        except OSError:  # filesystems without hard links
            if os.path.lexists(sidecar):
                raise Conflict() from None
            os.replace(tmp, sidecar)
    else:
        try:
            now_data, now_fp, _mode = read_snapshot(sidecar, len(old) + 1)
        except UnsafeSidecar as err:  # became a link meanwhile: read again, then skip
            raise Conflict() from err
        if (
            now_data != old
            or now_fp is None
            or old_fp is None
            or (now_fp.mtime_ns, now_fp.size) != (old_fp.mtime_ns, old_fp.size)
        ):
            raise Conflict()
        os.replace(tmp, sidecar)
    fsync_dir(sidecar.parent)


def fsync_dir(folder: Path) -> None:
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


def remove_stale_temps_beside(sidecar: Path) -> None:
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
