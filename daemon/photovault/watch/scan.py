"""The reconcile scan: the truth that watcher events only hint at.

inotify drops events on queue overflow (watchdog swallows the notice), a
daemon that was down saw nothing, and a polling fallback is slow. So at start
and on the `rescan` schedule each share is walked and compared by (size,
mtime) with the catalog: new or changed files are queued, vanished ones
forgotten. Symlinks are never followed, to files or to folders (no loops, no
duplicates, no escaping the share); the watcher keeps the same rule.

Deletions are believed only beside a present, readable root (see `root.py`):
a missing, unreadable or emptied root aborts the scan with nothing forgotten,
and a folder that cannot be listed keeps its files. A scan that would forget
most of a share at once (or most of it after the root's device changed) keeps
them and reports why, unless a person confirmed with `forget_missing`
(`vaultctl rescan SHARE --forget-missing`).

A quarantined file whose size and mtime did not change is retried when its
mode, owner or ACL changed after it was quarantined (its ctime is newer: a
`chmod` or `chown`), or when it was quarantined for a permission error and
can now be opened (its folder's permissions changed).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from photovault.catalog.store import Catalog, display
from photovault.watch.filters import ignored_dir, wanted
from photovault.watch.root import mass_forget_problem, probe
from photovault.watch.settle import SettleTracker

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    share: str
    seen: int = 0
    queued: int = 0
    settling: int = 0
    forgotten: int = 0
    errors: int = 0
    #: Known files not forgotten because their folder (or they) could not be read.
    kept: int = 0
    #: Quarantined files put back in the queue (their permissions changed).
    retried: int = 0
    seconds: float = 0.0
    #: Known files gone from disk but kept: forgetting so many at once needs a
    #: person's confirmation (`problem` says why).
    held: int = 0
    #: st_dev of the root, set when the scan completed and forgot what it found
    #: gone: the device the next scan's `expected_dev` should be.
    dev: int | None = None
    #: Why the share could not be scanned (root missing, unreadable, emptied or
    #: replaced during the scan) or why gone files were kept; nothing was
    #: forgotten then.
    problem: str | None = None


def walk_share(
    root: Path, on_error: Callable[[str, OSError], None]
) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relpath, lstat) of every wanted regular file under root.

    Never follows a symlink below `root`. `on_error(rel, exc)` gets each folder
    that cannot be listed ("." for root itself) and each entry that cannot be
    stat-ed; what is below them is unknown, not gone.
    """
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        folder = root / rel_dir if rel_dir else root
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            on_error(rel_dir or ".", exc)
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not ignored_dir(entry.name):
                        stack.append(rel)
                    continue
                if not entry.is_file(follow_symlinks=False) or not wanted(rel):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                on_error(rel, exc)
                continue
            yield rel, st


def _within(rel: str, folders: set[str]) -> bool:
    """True when rel is one of `folders` or lies below one of them."""
    if not folders:
        return False
    parts = rel.split("/")
    return any("/".join(parts[:i]) in folders for i in range(1, len(parts) + 1))


def _permission_error(reason: str | None) -> bool:
    low = (reason or "").lower()
    return "permission denied" in low or "operation not permitted" in low


def _may_read_now(path: Path, ctime_ns: int, since: float, reason: str | None) -> bool:
    """Is a quarantined file worth another try (its mode, owner or access changed)?"""
    if ctime_ns > since * 1e9:
        return True
    if not _permission_error(reason):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def reconcile(
    share: str,
    root: Path,
    catalog: Catalog,
    tracker: SettleTracker,
    *,
    settle_seconds: float,
    clock: Callable[[], float] = time.time,
    expected_dev: int | None = None,
    forget_missing: bool = False,
) -> ScanResult:
    """Compare a share with the catalog and fix the difference.

    `expected_dev` is the root's st_dev at the share's last complete scan
    (`ScanResult.dev`; None when unknown). Unless `forget_missing` (a person
    confirmed), files gone in bulk are kept: see `root.mass_forget_problem`.
    """
    started = time.monotonic()
    result = ScanResult(share=share)

    def catalogued() -> int:
        return catalog.count_share(share)

    before = probe(root, catalogued)
    if not before.ok:
        return _aborted(result, before.problem, started)
    known = catalog.known(share)
    total = len(known)
    quarantined = catalog.quarantined_of(share)
    unread: set[str] = set()

    def on_error(rel: str, exc: OSError) -> None:
        result.errors += 1
        unread.add(rel)
        log.warning(
            "scan %s: cannot read %s: %s (its known files are kept)",
            share,
            display(rel),
            exc.strerror or exc,
        )

    now = clock()
    for rel, st in walk_share(root, on_error):
        result.seen += 1
        size, mtime_ns = st.st_size, st.st_mtime_ns
        was = known.pop(rel, None)
        if was == (size, mtime_ns):
            q = quarantined.get(rel)
            if q is not None and _may_read_now(root / rel, st.st_ctime_ns, *q):
                n = catalog.retry_quarantined(share, rel)
                result.retried += n
                if n:
                    log.info("scan %s: %s changed permissions; retrying it", share, display(rel))
            continue
        if now - mtime_ns / 1e9 >= settle_seconds:
            if catalog.observe(share, rel, size, mtime_ns):
                result.queued += 1
        else:
            tracker.touch(share, rel, root / rel, writing=None)
            result.settling += 1
    if "." in unread:
        return _aborted(result, f"share root {root} cannot be read", started)
    # The walk may have raced an unmount or a rename: believe what it did not
    # see only if the root is still the folder it started on.
    after = probe(root, catalogued)
    if not after.ok or after.ident != before.ident:
        return _aborted(
            result, after.problem or f"share root {root} was replaced during the scan", started
        )
    gone = [rel for rel in known if not _within(rel, unread)]
    result.kept = len(known) - len(gone)
    dev = after.ident[0] if after.ident else None
    held = mass_forget_problem(
        share,
        root,
        len(gone),
        total,
        device_changed=expected_dev is not None and dev != expected_dev,
    )
    if held and not forget_missing:
        result.held = len(gone)
        return _aborted(result, held, started)
    if held:
        log.warning("scan %s: forgetting %d of %d files, as confirmed", share, len(gone), total)
    for rel in gone:
        # Gone from disk (or now ignored): forget it; nothing on the share is touched.
        result.forgotten += catalog.forget(share, rel)
        tracker.discard(share, rel)
    catalog.record_scan(share, result.seen)
    result.dev = dev
    result.seconds = time.monotonic() - started
    log.info(
        "scan %s: %d files, %d queued, %d settling, %d retried, %d forgotten, %d kept"
        " unread, %d errors in %.1fs",
        share,
        result.seen,
        result.queued,
        result.settling,
        result.retried,
        result.forgotten,
        result.kept,
        result.errors,
        result.seconds,
    )
    return result


def _aborted(result: ScanResult, problem: str | None, started: float) -> ScanResult:
    result.problem = problem
    result.seconds = time.monotonic() - started
    log.warning("scan %s: nothing forgotten: %s", result.share, problem)
    return result
