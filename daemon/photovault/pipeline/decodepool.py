"""The bounded pool of decode processes.

Decoding (and hashing, which reads the same bytes) is the CPU-heavy part of
ingest; it runs in separate processes so inference in the daemon never waits
for one decode, and at idle CPU and I/O priority so a NAS stays responsive.
Processes are spawned, not forked: a fork deadlocks once libheif or
onnxruntime threads exist in the parent (MEASUREMENTS.md).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import multiprocessing
import os
import platform
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from photovault.media.ffmpeg import ToolMissing, VideoTransient
from photovault.media.types import DecodedImage, MediaError

log = logging.getLogger(__name__)

#: Largest file we read into memory to hash and decode in one go.
MAX_FILE_BYTES = 2 * 1024**3
#: Largest video we hash (in chunks, never whole in memory) and hand to ffmpeg.
MAX_VIDEO_BYTES = 64 * 1024**3
#: Read size while hashing a video: big enough for few syscalls, small enough to
#: keep a decode process's memory flat whatever the video's size.
HASH_CHUNK_BYTES = 1024**2
_CHANGED = "file changed while it was read (still being copied?)"

_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "armv7l": 314}
_IOPRIO_CLASS_IDLE = 3
_IOPRIO_WHO_PROCESS = 1


@dataclass
class DecodeOutcome:
    """What a decode process sends back: the content hash and pixels, or a reason."""

    path: str
    sha256: str | None
    size: int
    mtime_ns: int
    image: DecodedImage | None = None
    error: str | None = None
    #: True when retrying cannot help (not an image, bomb); False for maybe-transient
    #: errors (file vanished, changed while read, I/O error).
    permanent: bool = False
    #: Time spent reading, hashing and decoding, measured in the decode process.
    seconds: float = 0.0


def lower_priority() -> None:
    """Nice 19 and the idle I/O class: batch work yields to everything else."""
    try:
        os.nice(19 - os.nice(0))
    except OSError:
        log.debug("cannot renice decode worker", exc_info=True)
    nr = _IOPRIO_SET.get(platform.machine())
    if nr is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(nr, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_CLASS_IDLE << 13)
    except OSError:
        log.debug("cannot set idle I/O priority", exc_info=True)


def decode_file(path: str, target_side: int, max_pixels: int) -> DecodeOutcome:
    """Read a file once, hash it and decode it. Runs inside a pool process."""
    started = time.perf_counter()
    out = _decode_file(path, target_side, max_pixels)
    out.seconds = time.perf_counter() - started
    return out


def _decode_file(path: str, target_side: int, max_pixels: int) -> DecodeOutcome:
    from photovault.media.decode import DecodeLimits, decode_image
    from photovault.media.formats import is_video

    if is_video(path):
        return _decode_video_file(path, target_side)
    fd = _open(path)
    if isinstance(fd, DecodeOutcome):
        return fd
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return DecodeOutcome(path, None, -1, -1, error="not a regular file", permanent=True)
        if st.st_size > MAX_FILE_BYTES:
            return DecodeOutcome(
                path,
                None,
                st.st_size,
                st.st_mtime_ns,
                permanent=True,
                error=f"file too large ({st.st_size} bytes)",
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read()
        after = os.fstat(fd)
    except OSError as exc:
        return DecodeOutcome(path, None, -1, -1, error=f"read error: {exc.strerror}")
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or len(
        data
    ) != st.st_size:
        return DecodeOutcome(path, None, st.st_size, st.st_mtime_ns, error=_CHANGED)
    digest = hashlib.sha256(data).hexdigest()
    out = DecodeOutcome(path, digest, st.st_size, st.st_mtime_ns)
    if target_side <= 0:
        return out
    _decode_into(
        out,
        lambda: decode_image(
            Path(path), target_side, data=data, limits=DecodeLimits(max_pixels=max_pixels)
        ),
    )
    return out


def _decode_into(out: DecodeOutcome, decode: Callable[[], DecodedImage]) -> None:
    """Run `decode` into `out.image`, or record why not: a file's fault is permanent,
    ffmpeg missing or killed is not; a decoder bug costs one file, not the pool."""
    try:
        out.image = decode()
    except (ToolMissing, VideoTransient) as exc:
        out.error = exc.reason  # ffmpeg not installed or killed: retried, not the file's fault
    except MediaError as exc:
        out.error, out.permanent = exc.reason, True
    except MemoryError:
        out.error, out.permanent = "out of memory while decoding", True
    except Exception as exc:
        out.error, out.permanent = f"decoder failed: {type(exc).__name__}: {exc}", True


def _open(path: str) -> int | DecodeOutcome:
    """A read-only descriptor for `path` (no symlinks, no atime update), or why not."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            return DecodeOutcome(path, None, -1, -1, error=f"cannot open: {exc.strerror}")
    except FileNotFoundError:
        return DecodeOutcome(path, None, -1, -1, error="file vanished before it was read")
    except OSError as exc:
        why = "is a symlink" if exc.errno == 40 else exc.strerror
        return DecodeOutcome(
            path, None, -1, -1, error=f"cannot open: {why}", permanent=exc.errno == 40
        )


def _decode_video_file(path: str, target_side: int) -> DecodeOutcome:
    """Hash a video in 1 MiB chunks (a 4 GB clip never sits in memory), then let
    ffmpeg sample it by path. A change in size or mtime during the hash or the
    decode means the file is still being written: a retry later, not a failure."""
    from photovault.media.video import decode_video

    fd = _open(path)
    if isinstance(fd, DecodeOutcome):
        return fd
    digest = hashlib.sha256()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return DecodeOutcome(path, None, -1, -1, error="not a regular file", permanent=True)
        if st.st_size > MAX_VIDEO_BYTES:
            error = f"file too large ({st.st_size} bytes)"
            return DecodeOutcome(
                path, None, st.st_size, st.st_mtime_ns, error=error, permanent=True
            )
        read = 0
        while chunk := os.read(fd, HASH_CHUNK_BYTES):
            digest.update(chunk)
            read += len(chunk)
        after = os.fstat(fd)
    except OSError as exc:
        return DecodeOutcome(path, None, -1, -1, error=f"read error: {exc.strerror}")
    finally:
        os.close(fd)
    key = (st.st_size, st.st_mtime_ns)
    if (after.st_size, after.st_mtime_ns) != key or read != st.st_size:
        return DecodeOutcome(path, None, st.st_size, st.st_mtime_ns, error=_CHANGED)
    out = DecodeOutcome(path, digest.hexdigest(), st.st_size, st.st_mtime_ns)
    if target_side <= 0:
        return out
    _decode_into(out, lambda: decode_video(Path(path), target_side))
    try:
        now = os.stat(path)
    except OSError:
        now = None
    if now is None or (now.st_size, now.st_mtime_ns) != key:
        out.image, out.sha256, out.error, out.permanent = None, None, _CHANGED, False
    return out


def _warm() -> None:
    import photovault.media.decode  # noqa: F401 - import cost paid before real work


class DecodePool:
    """A spawn-context process pool at low priority, started on first use and
    stopped by `release_idle` when nothing was submitted for a while: at rest its
    processes (about 60 MiB each with the decoders imported) are given back."""

    def __init__(self, workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.workers = workers
        self._clock = clock
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._last_used = clock()
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:  # e.g. the warm-up thread after a stop in the first seconds
                raise RuntimeError("the decode pool is shut down")
            self._last_used = self._clock()
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=lower_priority,
                )
            return self._pool

    @property
    def running(self) -> bool:
        return self._pool is not None

    def warm(self) -> None:
        """Start every process now: spawning and importing takes seconds, and that
        delay should not land on the first photo after start or resume."""
        try:
            pool = self._executor()
            for f in [pool.submit(_warm) for _ in range(self.workers)]:
                f.result()
        except (RuntimeError, BrokenProcessPool):  # stopped meanwhile: nothing to warm
            return

    def submit(self, path: Path, target_side: int, max_pixels: int) -> Future[DecodeOutcome]:
        return self._executor().submit(decode_file, os.fspath(path), target_side, max_pixels)

    def release_idle(self, idle_seconds: float) -> bool:
        """Stop the processes when nothing was submitted for `idle_seconds` (the
        caller knows nothing is in flight). True when they were stopped now."""
        with self._lock:
            if self._pool is None or self._clock() - self._last_used < idle_seconds:
                return False
            pool, self._pool = self._pool, None
        pool.shutdown(wait=True)
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
