"""Photo and video metadata (date, place, camera, size) read by one long-lived exiftool.

Why exiftool: it knows every maker's quirks (HEIC, CR3, sub-second and offset
tags, signed GPS composites); nothing in Python comes close. Why one stay-open
process and batches: starting exiftool costs 84 ms per file, while a
`-stay_open` process answers in 4.5 ms per file (MEASUREMENTS.md). Measured
with `measure_per_file_cost` on this 2-core dev machine: 6.4 ms per file in
batches of 32 small camera-tagged JPEGs (6.5 ms in one batch of 1280), plus
about 0.2 s once to start exiftool. The cost is exiftool's per-file Perl work
(composite tags included), not the pipe: a bare `exiftool` run over the same
files costs the same per file.

Threading: a `MetadataReader` is meant to be owned by one worker thread. Calls
are serialised by a lock, so sharing one by mistake is safe but not parallel;
for parallel reads create one reader (one exiftool) per thread.

Robustness:
* One bad file must not fail its batch. Missing, empty and non-regular files are
  refused before exiftool sees them; files exiftool cannot parse come back with
  an error tag; if the batch call as a whole fails (no output, broken JSON, the
  process died) we retry the batch one file at a time.
* If exiftool dies we start a new one. pyexiftool 0.5.6 would otherwise spin
  forever on the closed pipe when the process dies in the middle of a call, so
  a watchdog thread swaps the dead pipe for an unreadable descriptor, turning
  the hang into an exception (`_unblock_reader`).
* If exiftool cannot be started twice in a row we raise `MetadataUnavailable`:
  that is an installation problem, not a bad photo.

File names are bytes on Linux and need not be UTF-8 (b'caf\\xe9.jpg' from an old
Latin-1 camera or share). pyexiftool would encode each argument as UTF-8 and
fail on such a name, so we pass names as the raw bytes (`os.fsencode`), read
exiftool's answer as bytes, and run it with `-b`: exiftool's JSON then gives a
SourceFile that is not valid UTF-8 as "base64:..." of the raw bytes instead of
replacing the bad bytes with '?' (exiftool documents this under -j), so every
row maps back to its file exactly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from exiftool import ExifToolHelper
from exiftool.exceptions import ExifToolException

from photovault.media.exiftags import (
    TAGS,
    camera_name,
    iso_datetime,
    taken_at,
    to_metadata,
)
from photovault.media.formats import is_video
from photovault.media.types import MediaError, PhotoMetadata

log = logging.getLogger(__name__)

__all__ = [
    "TAGS",
    "ExifToolHung",
    "MetadataReader",
    "MetadataUnavailable",
    "camera_name",
    "iso_datetime",
    "taken_at",
]

#: -n: numbers, not pretty strings; -b: a value (SourceFile included) that is not
#: valid UTF-8 comes back as "base64:..." of its bytes, not with '?' in place of
#: the bad bytes.
COMMON_ARGS: tuple[str, ...] = ("-n", "-b")
#: For photos only: skip the JPEG trailer and maker notes. In an MP4 or MOV it
#: stops at the media data, and phones write the header (dates, size, GPS) after it.
PHOTO_ARGS: tuple[str, ...] = ("-fast2",)
_BASE64 = "base64:"
_WATCHDOG_POLL_S = 0.2
#: An exiftool call that takes longer than this (plus a little per file) is hung
#: (stopped, stuck on a network share): it is killed and the read fails.
CALL_TIMEOUT_S = 30.0
PER_FILE_TIMEOUT_S = 0.5


class MetadataUnavailable(RuntimeError):
    """exiftool is missing or keeps dying: an installation problem, not a bad photo."""


class ExifToolHung(MetadataUnavailable):
    """exiftool did not answer in time and was killed (not a bad photo either)."""


class MetadataReader:
    """Batch reader of `PhotoMetadata` over one stay-open exiftool, started lazily.

    Use it as a context manager (or call `close()`) so the exiftool process ends
    with the stage that owns it.
    """

    def __init__(
        self,
        executable: str | None = None,
        batch_size: int = 64,
        call_timeout: float = CALL_TIMEOUT_S,
    ) -> None:
        # Batches stay small enough that exiftool's stderr (one line per failed
        # file) never fills a pipe buffer while pyexiftool is reading stdout.
        self._executable = executable
        self._batch_size = max(1, batch_size)
        self._lock = threading.Lock()
        self._et: ExifToolHelper | None = None
        self._call_timeout = call_timeout

    def __enter__(self) -> MetadataReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop exiftool (if running). The reader starts a new one if used again."""
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        """The exiftool process id while one runs (for health checks and tests)."""
        process = getattr(self._et, "_process", None) if self._et is not None else None
        return process.pid if process is not None else None

    def read(self, paths: Iterable[Path]) -> dict[Path, PhotoMetadata | MediaError]:
        """Metadata for each path, or a `MediaError` saying why it could not be read.

        Every input path is a key of the result. One exiftool call per batch of
        `batch_size` files.
        """
        results: dict[Path, PhotoMetadata | MediaError] = {}
        readable: list[Path] = []
        for path in dict.fromkeys(Path(p) for p in paths):  # each file once, in order
            problem = _precheck(path)
            if problem is None:
                readable.append(path)
            else:
                results[path] = MediaError(path, problem)
        # Photos and videos go in separate batches: photos are read with -fast2.
        photos = [p for p in readable if not is_video(p)]
        videos = [p for p in readable if is_video(p)]
        with self._lock:
            for group in (photos, videos):
                for start in range(0, len(group), self._batch_size):
                    batch = group[start : start + self._batch_size]
                    results.update(self._read_batch(batch))
        order = {path: i for i, path in enumerate(dict.fromkeys(Path(p) for p in paths))}
        return dict(sorted(results.items(), key=lambda item: order.get(item[0], 0)))

    # -- one batch ---------------------------------------------------------

    def _read_batch(self, batch: Sequence[Path]) -> dict[Path, PhotoMetadata | MediaError]:
        try:
            rows = self._execute(batch)
        except (ExifToolException, OSError, ValueError) as exc:
            log.info("exiftool batch of %d failed (%s); reading one at a time", len(batch), exc)
            return {path: self._read_one(path) for path in batch}
        by_name = {_arg(path): path for path in batch}
        results: dict[Path, PhotoMetadata | MediaError] = {}
        for row in rows:
            path = by_name.get(_source_file(row.get("SourceFile")) or b"")
            if path is not None:
                results[path] = to_metadata(path, row)
        for path in batch:
            if path not in results:  # exiftool printed an error instead of a row
                results[path] = self._read_one(path)
        return results

    def _read_one(self, path: Path) -> PhotoMetadata | MediaError:
        try:
            rows = self._execute([path])
        except ExifToolHung:
            raise  # exiftool itself is stuck, not this photo: the caller retries later
        except (ExifToolException, OSError, ValueError) as exc:
            stderr = self._et.last_stderr if self._et is not None else None
            reason = _stderr_reason(stderr) or f"exiftool failed: {type(exc).__name__}"
            log.info("metadata unreadable for %s: %s", path, reason)
            return MediaError(path, reason)
        if not rows:
            return MediaError(path, "exiftool returned nothing for this file")
        return to_metadata(path, rows[0])

    def _execute(self, batch: Sequence[Path]) -> list[dict[str, Any]]:
        """One exiftool call; restarts a dead exiftool first, and once more if starting fails."""
        et = self._ensure_running()
        fast = () if any(is_video(path) for path in batch) else PHOTO_ARGS
        params: list[str | bytes] = [*fast, *(f"-{tag}" for tag in TAGS)]
        params += [_arg(path) for path in batch]
        done = threading.Event()
        hung = threading.Event()
        process = et._process  # pyexiftool has no public handle on it
        limit = self._call_timeout + PER_FILE_TIMEOUT_S * len(batch)
        watchdog = threading.Thread(
            target=_watch,
            args=(process, done, time.monotonic() + limit, hung),
            name="exiftool-watchdog",
            daemon=True,
        )
        watchdog.start()
        try:
            # Bytes in and out: pyexiftool would decode stdout and stderr as
            # UTF-8, and stderr names the files, in their raw bytes.
            out = et.execute("-j", *params, raw_bytes=True)
        except Exception as exc:
            if hung.is_set():
                raise ExifToolHung(f"exiftool did not answer within {limit:.0f} s") from exc
            raise
        finally:
            done.set()
            watchdog.join()
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        if not text.strip():
            raise ValueError("exiftool printed nothing")
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError("exiftool printed JSON that is not a list")
        return [_unbase64(row) for row in rows if isinstance(row, dict)]

    # -- process lifecycle -------------------------------------------------

    def _ensure_running(self) -> ExifToolHelper:
        if self._et is not None and self._alive(self._et):
            return self._et
        if self._et is not None:
            log.warning("exiftool (pid %s) died; starting a new one", self.pid)
            self._stop()
        last_error: Exception | None = None
        for _attempt in range(2):
            try:
                started = time.perf_counter()
                et = ExifToolHelper(
                    executable=self._executable,
                    common_args=list(COMMON_ARGS),
                    auto_start=False,
                    check_execute=False,
                    check_tag_names=False,
                )
                et.run()
                log.debug("exiftool started in %.0f ms", (time.perf_counter() - started) * 1e3)
                self._et = et
                return et
            except (ExifToolException, OSError, RuntimeError) as exc:
                last_error = exc
                log.warning("could not start exiftool: %s", exc)
        raise MetadataUnavailable(
            f"exiftool could not be started ({last_error}); "
            "install it (Debian/Ubuntu: apt install libimage-exiftool-perl)"
        ) from last_error

    @staticmethod
    def _alive(et: ExifToolHelper) -> bool:
        process = getattr(et, "_process", None)
        return process is not None and process.poll() is None

    def _stop(self) -> None:
        et, self._et = self._et, None
        if et is None:
            return
        try:
            if self._alive(et):
                et.terminate()
        except (ExifToolException, OSError) as exc:
            log.debug("exiftool did not stop cleanly: %s", exc)
        process = getattr(et, "_process", None)
        if process is not None:
            if process.poll() is None:
                process.kill()
                process.wait()
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            # Tell pyexiftool it is over, so its __del__ leaves the dead pipes alone.
            et._flag_running_false()


def measure_per_file_cost(paths: Sequence[Path], repeats: int = 3) -> float:
    """Milliseconds per file for batch reads of `paths` (best of `repeats`, warm process)."""
    with MetadataReader() as reader:
        reader.read(paths[:1])  # start exiftool outside the timing
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            reader.read(paths)
            best = min(best, time.perf_counter() - started)
    return best * 1e3 / max(1, len(paths))


def _watch(process: Any, done: threading.Event, deadline: float, hung: threading.Event) -> None:
    """Unblock pyexiftool's read loop if exiftool dies during a call, or kill it
    when it has not answered by `deadline` (a stopped or stuck process)."""
    while not done.wait(_WATCHDOG_POLL_S):
        if time.monotonic() > deadline and process.poll() is None:
            log.warning("exiftool (pid %s) hung; killing it", process.pid)
            hung.set()
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
        if process.poll() is not None:
            log.warning("exiftool (pid %s) died during a call", process.pid)
            _unblock_reader(process)
            return


def _unblock_reader(process: Any) -> None:
    """Replace the dead process's stdout/stderr descriptors with a directory.

    pyexiftool loops on `select()` + `os.read()` until it sees its sentinel; at
    EOF that loop never ends. `dup2` swaps the descriptor atomically (no chance
    of another thread reusing a closed number), select() reports a directory as
    readable, and `os.read` on it raises IsADirectoryError, which ends the call.
    """
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None and not pipe.closed:
                os.dup2(fd, pipe.fileno())
    finally:
        os.close(fd)


def _precheck(path: Path) -> str | None:
    """Why exiftool should not even be asked about `path`, or None."""
    text = str(path)
    if "\n" in text or "\r" in text:
        return "file name contains a line break (exiftool's argument protocol cannot pass it)"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "file not found (deleted or moved?)"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a FIFO, socket or device)"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _arg(path: Path) -> bytes:
    """The path as exiftool gets it: its raw bytes (names need not be UTF-8), and
    never with a leading dash, which would read as an option."""
    raw = os.fsencode(path)
    return b"./" + raw if raw.startswith(b"-") else raw


def _source_file(value: object) -> bytes | None:
    """A row's SourceFile as the bytes we passed (see `_unbase64`)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


def _unbase64(row: dict[str, Any]) -> dict[str, Any]:
    """A row with -b's "base64:..." strings decoded: SourceFile to its raw bytes,
    any other text (a Make or Model in a legacy charset) to text, bad bytes as U+FFFD."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str) and value.startswith(_BASE64):
            try:
                raw = base64.b64decode(value[len(_BASE64) :], validate=True)
            except (binascii.Error, ValueError):
                raw = None
            if raw is not None:
                value = raw if key == "SourceFile" else raw.decode("utf-8", "replace")
        out[key] = value
    return out


def _stderr_reason(stderr: object) -> str | None:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    if not isinstance(stderr, str):
        return None
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith(("Error:", "Warning:")):
            return "exiftool: " + line.split(":", 1)[1].split(" - ", 1)[0].strip()
    return None
