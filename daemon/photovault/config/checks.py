"""What the types cannot say: the socket path's length, and this machine's view of
the settings (the state folder, the socket and admin groups, the share folders)."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path

from photovault.config.env import EnvOverride, source
from photovault.config.sections import ServerSettings, Settings

#: Longest Unix socket path in bytes: Linux's sun_path holds 108, the last one the NUL.
MAX_SOCKET_PATH_BYTES = 107


def _state_dir_problem(path: Path) -> str | None:
    """Why vaultd could not keep its state in `path` (creating it if missing), or None."""
    who = f"uid {os.geteuid()}"
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            return "is a symbolic link to nothing"
    except OSError as exc:
        return f"cannot be checked: {exc.strerror or exc}"
    else:
        if not stat.S_ISDIR(st.st_mode):
            return "is not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"is not writable by {who}"
        return None
    for ancestor in path.parents:  # missing: vaultd creates it, so its first existing parent
        try:
            st = ancestor.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            return f"cannot be created: {ancestor}: {exc.strerror or exc}"
        if not stat.S_ISDIR(st.st_mode):
            return f"cannot be created: {ancestor} is not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"cannot be created: {ancestor} is not writable by {who}"
        return None
    return None


def _group_problems(server: ServerSettings, overrides: list[EnvOverride]) -> list[str]:
    """A named group must exist, and vaultd must be able to give the socket to its group."""
    problems = []
    for key in ("socket_group", "admin_group"):
        name = getattr(server, key)
        if name is None:
            continue
        where = f"[server] {key}{source(('server', key), overrides)}"
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            problems.append(f"  {where}: no group named {json.dumps(name)} on this system")
            continue
        uid = os.geteuid()
        if key == "socket_group" and uid != 0 and gid != os.getegid() and gid not in os.getgroups():
            problems.append(
                f"  {where}: uid {uid} is neither root nor a member of group "
                f"{json.dumps(name)}, so it cannot give the socket to that group"
            )
    return problems


def _share_problem(path: Path) -> tuple[str | None, bool]:
    """Why a share folder cannot be used now, and whether that is only a missing
    folder (an outage at run time: a disk not mounted yet)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist", True
    except OSError as exc:
        return f"cannot be reached: {exc.strerror or exc}", False
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder", False
    return None, False


def setting_problems(
    settings: Settings,
    overrides: list[EnvOverride],
    *,
    check_paths: bool,
    missing_shares_ok: bool = False,
) -> list[str]:
    """What the types cannot say: the socket path's length, and with `check_paths` the
    state folder, the groups and the share folders as this machine has them (a
    missing share folder is no problem with `missing_shares_ok`)."""
    problems = []
    if check_paths:
        why = _state_dir_problem(settings.state_dir)
        if why:
            where = f"state_dir{source(('state_dir',), overrides)}"
            problems.append(f"  {where}: {settings.state_dir} {why}")
    socket = settings.server.socket
    size = len(os.fsencode(socket))
    if size > MAX_SOCKET_PATH_BYTES:
        where = f"[server] socket{source(('server', 'socket'), overrides)}"
        problems.append(
            f"  {where}: {socket} is {size} bytes long; a Unix socket path may have at most "
            f"{MAX_SOCKET_PATH_BYTES} bytes (AF_UNIX limit)"
        )
    if check_paths:
        problems.extend(_group_problems(settings.server, overrides))
        for i, share in enumerate(settings.shares):
            why, missing = _share_problem(share.path)
            if why and not (missing and missing_shares_ok):
                problems.append(
                    f"  [[shares]] #{i + 1} path: {share.path} {why} (share {share.name!r})"
                )
    return problems
