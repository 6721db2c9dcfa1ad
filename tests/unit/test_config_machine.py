"""What the types cannot say: state_dir, the socket path's length and the groups (#14).

The checks run in `load`, so `vaultd --check` and a starting vaultd refuse the
same configurations with the same message naming the file and the key.
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from photovault.config import MAX_SOCKET_PATH_BYTES, ConfigError, load

NOBODY = 65534
NO_GROUP = "photovault-test-no-such-group"


def write(folder: Path, text: str) -> Path:
    p = folder / "vaultd.toml"
    p.write_text(text)
    return p


def problem(p: Path, *, check_paths: bool = True) -> str:
    with pytest.raises(ConfigError) as exc:
        load(p, environ={}, check_paths=check_paths)
    return str(exc.value)


def vaultd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real vaultd entry point, without VAULT_ variables of the caller."""
    script = Path(sys.executable).with_name("vaultd")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "photovault.daemon_main"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}
    )


def load_without_root(p: Path) -> str:
    """`load(p)` as a user that is not root: in a child that dropped to nobody when we
    are root (as the vault user of the systemd unit is), here otherwise. Returns the
    error text, or "OK"."""
    if os.geteuid() != 0:
        try:
            load(p, environ={})
        except ConfigError as exc:
            return str(exc)
        return "OK"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        out = "OK"
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            load(p, environ={})
        except ConfigError as exc:
            out = str(exc)
        except BaseException as exc:
            out = f"child failed: {exc!r}"
        finally:
            os.write(write_end, out.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        text = f.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.fixture
def open_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder any user can read (pytest's own temp root is private to root)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="pv-config-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_state_dir_that_is_a_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    p = write(tmp_path, 'state_dir = "state"\n')
    assert f"  state_dir: {tmp_path / 'state'} is not a folder" in problem(p)


def test_state_dir_below_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "disk").write_text("")
    p = write(tmp_path, 'state_dir = "disk/photovault"\n')
    msg = problem(p)
    assert f"state_dir: {tmp_path / 'disk/photovault'} cannot be created: " in msg
    assert f"{tmp_path / 'disk'} is not a folder" in msg


def test_a_missing_state_dir_that_can_be_created_passes_and_is_not_created(
    tmp_path: Path,
) -> None:
    s = load(write(tmp_path, 'state_dir = "new/state"\n'), environ={})
    assert s.state_dir == tmp_path / "new/state"
    assert not (tmp_path / "new").exists()


def test_state_dir_the_daemon_user_cannot_write_is_refused(open_dir: Path) -> None:
    state = open_dir / "state"
    state.mkdir(mode=0o755)  # the owner (us) may write; the daemon user (not root) may not
    if os.geteuid() != 0:
        state.chmod(0o555)
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    msg = load_without_root(write(open_dir, f'state_dir = "{state}"\n'))
    assert f"state_dir: {state} is not writable by uid {uid}" in msg


def test_socket_path_longer_than_af_unix_allows_is_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    longest = str(tmp_path / "s") + "x" * (MAX_SOCKET_PATH_BYTES - len(str(tmp_path / "s")))
    assert len(longest) == MAX_SOCKET_PATH_BYTES
    with socket.socket(socket.AF_UNIX) as probe:  # the kernel's own limit agrees
        probe.bind(longest)
    os.unlink(longest)
    assert load(write(tmp_path, f'[server]\nsocket = "{longest}"\n'), environ={})

    p = write(tmp_path, f'[server]\nsocket = "{longest}y"\n')
    expected = (
        f"  [server] socket: {longest}y is 108 bytes long; a Unix socket path may have at "
        "most 107 bytes (AF_UNIX limit)"
    )
    assert expected in problem(p)
    assert expected in problem(p, check_paths=False)  # vaultctl could not connect either


def test_a_relative_socket_path_counts_its_config_folder(tmp_path: Path) -> None:
    name = "x" * (MAX_SOCKET_PATH_BYTES - len(str(tmp_path)))  # with the slash: 108 bytes
    p = write(tmp_path, f'[server]\nsocket = "{name}"\n')
    assert "[server] socket: " in problem(p)


def test_socket_group_that_does_not_exist_refuses_start(tmp_path: Path) -> None:
    p = write(tmp_path, f'[server]\nsocket_group = "{NO_GROUP}"\n')
    msg = problem(p)
    assert f'  [server] socket_group: no group named "{NO_GROUP}" on this system' in msg


def test_admin_group_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, f'[server]\nadmin_group = "{NO_GROUP}"\n')
    assert f'[server] admin_group: no group named "{NO_GROUP}"' in problem(p)


def test_the_daemon_own_group_is_a_valid_socket_group(tmp_path: Path) -> None:
    own = grp.getgrgid(os.getegid()).gr_name
    s = load(write(tmp_path, f'[server]\nsocket_group = "{own}"\n'), environ={})
    assert s.server.socket_group == own


def test_socket_group_the_daemon_user_is_not_in_is_refused(open_dir: Path) -> None:
    state = open_dir / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    foreign = grp.getgrgid(0).gr_name  # root's group: nobody (or we, unprivileged) not in it
    if os.geteuid() != 0 and 0 in os.getgroups():
        pytest.skip("this user is a member of group 0")
    msg = load_without_root(
        write(open_dir, f'state_dir = "{state}"\n[server]\nsocket_group = "{foreign}"\n')
    )
    uid = os.geteuid() or NOBODY
    assert f"[server] socket_group: uid {uid} is neither root nor a member of group" in msg


def test_the_paths_are_not_checked_for_vaultctl(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    p = write(tmp_path, f'state_dir = "state"\n[server]\nsocket_group = "{NO_GROUP}"\n')
    assert load(p, environ={}, check_paths=False).server.socket_group == NO_GROUP


def test_vaultd_check_reports_every_machine_problem_with_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    long_socket = "/run/" + "s" * 110 + ".sock"
    p = write(
        tmp_path,
        f'state_dir = "state"\n[server]\nsocket = "{long_socket}"\nsocket_group = "{NO_GROUP}"\n',
    )
    result = vaultd("--check", "--config", str(p))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"vaultd: {p}: invalid configuration")
    assert f"state_dir: {tmp_path / 'state'} is not a folder" in result.stderr
    assert "[server] socket: " in result.stderr and "AF_UNIX limit" in result.stderr
    assert f'[server] socket_group: no group named "{NO_GROUP}"' in result.stderr


def test_vaultd_check_reports_a_quoted_number_and_boolean(tmp_path: Path) -> None:
    p = write(tmp_path, '[throttle]\nbatch_size = "8"\n[sidecars]\nenabled = "yes"\n')
    result = vaultd("--check", "--config", str(p))
    assert result.returncode == 2
    assert '[throttle] batch_size: expected an integer, got the string "8"' in result.stderr
    assert '[sidecars] enabled: expected true or false, got the string "yes"' in result.stderr


def test_vaultd_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    p = write(tmp_path, f'state_dir = "state"\n[server]\nsocket = "{tmp_path / "v.sock"}"\n')
    result = vaultd("--config", str(p))
    assert result.returncode == 2
    assert f"{p}: invalid configuration" in result.stderr
    assert "state_dir: " in result.stderr and "is not a folder" in result.stderr
    assert not (tmp_path / "v.sock").exists()
