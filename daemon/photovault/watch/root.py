"""Is a share root there, readable, and the folder we know? An outage is not a deletion.

A disk that is not mounted, a NAS that is down, a share folder renamed away:
each looks, to a naive scan, like "every photo was deleted", and forgetting
them costs a full re-analysis and a rewrite of every sidecar when they come
back (Syncthing stops a folder with "folder marker missing" for the same
reason). The rule, applied alike by the watcher and the reconcile scan:

* A share root that is missing, is not a folder, or cannot be listed is an
  *outage*: nothing is forgotten, the problem is reported (kind "share") and
  the share resumes by itself when its root is back.
* A root that is present but completely empty (not a single entry) while the
  catalog holds photos of the share counts as an outage too: that is what an
  unmounted disk leaves behind (the bare mount point). To empty a share on
  purpose, remove it from the configuration (or leave any file in its root).
* inotify watches inodes, not paths: a root renamed away keeps its watches,
  and deletions inside the moved tree would arrive as deletions in the share.
  So the watcher remembers the (st_dev, st_ino) of the root it watches and
  believes no deletion or move while the path leads elsewhere (or nowhere);
  once a usable root is back — the same folder or a new one — it watches it
  afresh and asks for a rescan, which is what decides what was deleted.
* The scan checks the root before its walk and again after it, and forgets
  files only when both checks pass on the same folder. A subfolder it cannot
  read (or an entry it cannot stat) keeps its known files; they are never
  taken as deleted.
* A scan forgets files in bulk only when that is plausible. When it would
  forget more than half of the files the catalog holds for a share, and either
  more than `MASS_FORGET_MIN` (20) of them or the root is on another device
  (`st_dev`) than at the share's last complete scan (an unmounted disk leaves
  the mount point on the parent file system; a stray file written into it
  makes the root look present and readable), it forgets none of them and
  reports a "share" problem instead. A person who did delete them confirms
  with `vaultctl rescan SHARE --forget-missing` (root or the admin group).
  The device is remembered in memory only, so after a restart the count
  alone decides. Deletions the watcher sees one at a time (a person deleting
  photos) are always believed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: (st_dev, st_ino) of a share root: which folder the path led to.
Ident = tuple[int, int]

#: A scan may forget at most this many files of a share at once without a
#: person's confirmation, when they are more than half of its catalogued files
#: (unless the root's device changed: then any such majority needs one).
MASS_FORGET_MIN = 20


@dataclass(frozen=True)
class RootState:
    """What a share root looks like now: its identity (when present) and, when it
    cannot be used, why not."""

    ident: Ident | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def probe(root: Path, catalogued: Callable[[], int]) -> RootState:
    """Stat and list the root once. `catalogued()` (how many files of this share the
    catalog holds) is asked only when the root turns out empty."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return RootState(None, f"share root {root} is missing (renamed, deleted or not mounted)")
    except OSError as exc:
        return RootState(None, f"share root {root} cannot be reached: {exc.strerror or exc}")
    ident = (st.st_dev, st.st_ino)
    if not stat.S_ISDIR(st.st_mode):
        return RootState(ident, f"share root {root} is not a folder")
    try:
        with os.scandir(root) as it:
            first = next(it, None)
    except OSError as exc:
        return RootState(ident, f"share root {root} cannot be read: {exc.strerror or exc}")
    if first is None:
        n = catalogued()  # < 0: unknown, so be careful
        if n:
            some = f"{n} of its files are" if n > 0 else "files may be"
            return RootState(
                ident,
                f"share root {root} is empty but {some} catalogued (disk not mounted?);"
                " keeping them",
            )
    return RootState(ident)


def mass_forget_problem(
    share: str,
    root: Path,
    missing: int,
    catalogued: int,
    *,
    device_changed: bool,
    limit: int = MASS_FORGET_MIN,
) -> str | None:
    """Why a scan must not forget `missing` of a share's `catalogued` files without
    a person's word, or None when believing it is plausible (see the module doc)."""
    if missing * 2 <= catalogued or (missing <= limit and not device_changed):
        return None
    dev = (
        f" and its root {root} is on another device than at its last full scan"
        if device_changed
        else ""
    )
    return (
        f"{missing} of {catalogued} photos of share {share} are gone from disk{dev};"
        " not forgetting them (disk not mounted?). If they were deleted on purpose:"
        f" `vaultctl rescan {share} --forget-missing`"
    )
