"""Who may see which photo: the caller's own file permissions, checked by us.

The daemon runs as a service user that can read every share, so results must
be filtered to what the *caller* (uid and groups from SO_PEERCRED) could open
themselves: read permission on the file and search (x) permission on every
folder from the share root down. Root and members of `[server] admin_group`
see everything. POSIX ACLs are not evaluated (documented limitation); plain
mode bits are what SMB-on-Linux shares use by default.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Identity:
    uid: int
    gids: frozenset[int]
    admin: bool = False
    _dir_cache: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, uid: int, gid: int, admin_group: str | None = None) -> Identity:
        """Resolve supplementary groups from the user database (as login would)."""
        gids = {gid}
        try:
            name = pwd.getpwuid(uid).pw_name
            gids.update(os.getgrouplist(name, gid))
        except KeyError:
            pass
        admin = uid == 0
        if admin_group and not admin:
            try:
                admin = grp.getgrnam(admin_group).gr_gid in gids
            except KeyError:
                admin = False
        return cls(uid, frozenset(gids), admin)

    def _allows(self, st: os.stat_result, want: int) -> bool:
        """want: 4 (read) or 1 (execute/search), checked like the kernel does."""
        if st.st_uid == self.uid:
            return bool(st.st_mode & (want << 6))
        if st.st_gid in self.gids:
            return bool(st.st_mode & (want << 3))
        return bool(st.st_mode & want)

    def can_read(self, path: Path, root: Path) -> bool:
        """True when this identity could open `path` (a file under `root`) for reading."""
        if self.admin:
            return True
        try:
            st = os.stat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or not self._allows(st, 4):
            return False
        folder = path.parent
        chain = []
        while True:
            chain.append(folder)
            if folder == root or folder == folder.parent:
                break
            folder = folder.parent
        for d in chain:
            key = os.fspath(d)
            ok = self._dir_cache.get(key)
            if ok is None:
                try:
                    ok = self._allows(os.stat(d), 1)
                except OSError:
                    ok = False
                self._dir_cache[key] = ok
            if not ok:
                return False
        return True
