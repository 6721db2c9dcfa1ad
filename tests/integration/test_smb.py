"""Photos uploaded over SMB: a real smbd on loopback, real smbclient uploads, a real vaultd.

smbd listens on 127.0.0.1:44500 only (not 445), with every state folder in
tmp, and exports the folder vaultd watches with the share settings of
deploy/samba/smb.conf.example. Needs the Debian packages `samba` and `smbclient`.
"""

from __future__ import annotations

import io
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.photos import jpeg_bytes
from helpers.vault import REPO, VaultProcess, write_config

EXAMPLE = REPO / "deploy" / "samba" / "smb.conf.example"
PORT = 44500
# Site-specific lines of the example replaced for the test (who may log in, groups).
SITE_SPECIFIC = {"path", "valid users", "force group", "comment"}


def tool(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if exe is None:
        pytest.skip(f"{name} not installed (apt-get install samba smbclient)")
    return exe


def share_options() -> list[str]:
    """`key = value` lines of the example's [photos] section."""
    text = EXAMPLE.read_text()
    section = text[text.index("[photos]") :]
    out = []
    for line in section.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key = line.split("=", 1)[0].strip()
        if key not in SITE_SPECIFIC:
            out.append(line)
    return out


def test_the_example_share_parses_without_unknown_parameters() -> None:
    result = subprocess.run(
        [tool("testparm"), "-s", str(EXAMPLE)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown parameter" not in result.stderr, result.stderr


class Smbd:
    def __init__(self, base: Path, share: Path) -> None:
        smbd = tool("smbd")
        for d in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
            (base / d).mkdir(parents=True)
        opts = "\n  ".join(share_options())
        self.conf = base / "smb.conf"
        self.conf.write_text(f"""[global]
  server role = standalone server
  smb ports = {PORT}
  bind interfaces only = yes
  interfaces = lo
  disable netbios = yes
  private dir = {base}/private
  lock directory = {base}/lock
  state directory = {base}/state
  cache directory = {base}/cache
  pid directory = {base}/pid
  ncalrpc dir = {base}/ncalrpc
  log file = {base}/log.smbd
  passdb backend = tdbsam:{base}/private/passdb.tdb
  map to guest = Bad User
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  server min protocol = SMB2_10
  usershare path =
[photos]
  path = {share}
  guest ok = yes
  force user = root
  {opts}
""")
        self.log = open(base / "smbd.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                smbd,
                "--foreground",
                "--no-process-group",
                f"--configfile={self.conf}",
                "--debug-stdout",
            ],
            stdout=self.log,
            stderr=self.log,
            # smbd signals its whole process group when it stops: give it a session of
            # its own, or it takes pytest (and make, and CI) down with it.
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"smbd exited: {(base / 'smbd.out').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("smbd did not listen on 127.0.0.1:44500")

    def client(self, command: str, timeout: float = 120) -> None:
        """Run one smbclient command against the share, as a guest."""
        result = subprocess.run(
            [
                tool("smbclient"),
                "//127.0.0.1/photos",
                "-p",
                str(PORT),
                "-N",
                "--configfile",
                str(self.conf),
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0 and "NT_STATUS" not in result.stdout, (
            result.stdout + result.stderr
        )

    def put(self, local: Path, remote: str) -> None:
        self.client(f'put "{local}" "{remote}"')

    def get(self, remote: str, local: Path) -> bytes:
        self.client(f'get "{remote}" "{local}"', timeout=60)
        return local.read_bytes()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def smb_vault(tmp_path: Path, real_tagger_store: Path) -> Iterator[tuple[Smbd, VaultProcess]]:
    share = tmp_path / "photos"
    share.mkdir()
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close()
        pytest.skip(f"port {PORT} is already taken on this machine")
    except OSError:
        pass
    smbd = Smbd(tmp_path / "samba", share)
    shutil.copytree(real_tagger_store, tmp_path / "state" / "models")
    vault = VaultProcess(
        write_config(tmp_path, settle=1.0, analyzers=["metadata", "tagger"]), tmp_path
    )
    try:
        vault.start()
        yield smbd, vault
    finally:
        vault.stop()
        smbd.stop()


def slow_smb_write(
    smbclient: Any, vault: VaultProcess, share: Path, name: str, data: bytes, chunks: int
) -> None:
    """Write `data` to the share's `name` through a real SMB2 client (smbprotocol) in
    `chunks` writes with pauses longer than settle_seconds, keeping the file open, and
    check after each that vaultd has not taken the half-written file."""
    # A guest session has no signing key to verify the negotiation with.
    smbclient.ClientConfig(require_secure_negotiate=False)
    smbclient.register_session(
        "127.0.0.1",
        username="guest",
        password="",
        port=PORT,
        require_signing=False,
        auth_protocol="ntlm",
    )
    try:
        with smbclient.open_file(rf"\\127.0.0.1\photos\{name}", mode="wb", port=PORT) as fh:
            step = len(data) // chunks + 1
            for i in range(0, len(data), step):
                fh.write(data[i : i + step])
                fh.flush()
                time.sleep(1.5)  # > settle_seconds, file still open
                assert vault.ctl("show", str(share / name), check=False).returncode == 1
    finally:
        smbclient.reset_connection_cache()


def analysis_runs(vault: VaultProcess, path: Path) -> int:
    sha = vault.show(path)["sha256"]
    with vault.db() as db:
        row = db.execute("SELECT analysis_runs FROM content WHERE sha256 = ?", (sha,)).fetchone()
    return int(row[0])


@pytest.mark.slow
def test_photos_uploaded_over_smb_are_each_indexed_once_and_only_when_complete(
    tmp_path: Path,
    smb_vault: tuple[Smbd, VaultProcess],
) -> None:
    smbd, vault = smb_vault
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    small = {f"IMG_{i:04d}.JPG": jpeg_bytes(i, (640, 480)) for i in range(3)}
    # A large, camera-sized photo (tens of MB) arrives in many SMB writes.
    big = jpeg_bytes(99, (6000, 4000), quality=100)
    assert len(big) > 20_000_000
    files = {**small, "big/DSC_9999.JPG": big}
    for name, data in files.items():
        (outbox / name).parent.mkdir(parents=True, exist_ok=True)
        (outbox / name).write_bytes(data)

    for name in small:
        smbd.put(outbox / name, name)
    smbd.client("mkdir big", timeout=60)
    smbd.put(outbox / "big/DSC_9999.JPG", r"big\DSC_9999.JPG")
    vault.wait_idle(expect_done=len(files), timeout=120)

    share = tmp_path / "photos"
    for name, data in files.items():
        shown = vault.show(share / name)
        assert shown["state"] == "done", shown
        assert shown["size"] == len(data) and shown["attempts"] == 0, (name, shown)
        assert analysis_runs(vault, share / name) == 1, name
    big_shown = vault.show(share / "big/DSC_9999.JPG")
    assert (big_shown["width"], big_shown["height"]) == (6000, 4000)
    counts = vault.counts()
    assert counts["failed"] == 0 and counts["quarantined"] == 0, counts
    # One "queued" line per file: nothing was picked up half-written and again later.
    for name in files:
        leaf = re.escape(Path(name).name)
        assert len(re.findall(rf"queued photos/\S*{leaf} ", vault.log())) == 1, name


@pytest.mark.slow
def test_a_slow_smb_copy_is_indexed_once_complete_and_its_sidecar_is_readable_over_smb(
    tmp_path: Path,
    smb_vault: tuple[Smbd, VaultProcess],
) -> None:
    """A real SMB2 client (smbprotocol) writes a cat photo in chunks with pauses longer
    than settle_seconds, keeping the file open; vaultd waits for the close."""
    smbclient = pytest.importorskip("smbclient")
    from PIL import Image
    from skimage import data

    smbd, vault = smb_vault
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((1800, 1200)).save(buf, "JPEG", quality=97)
    photo = buf.getvalue()
    share = tmp_path / "photos"
    slow_smb_write(smbclient, vault, share, "chelsea.jpg", photo, chunks=6)
    vault.wait_idle(expect_done=1, timeout=120)
    shown = vault.show(share / "chelsea.jpg")
    assert shown["size"] == len(photo) and shown["attempts"] == 0
    assert analysis_runs(vault, share / "chelsea.jpg") == 1
    assert any(t["tag"] == "Animals|Cat" for t in shown["tags"])

    vault.wait_for(
        lambda: vault.show(share / "chelsea.jpg").get("sidecar_state") == "written",
        30,
        "sidecar written",
    )
    sidecar = smbd.get("chelsea.jpg.xmp", tmp_path / "fetched.xmp")
    assert b"Animals|Cat" in sidecar
    found = vault.ctl("search", "--tag", "cat", "--json").stdout
    assert "chelsea.jpg" in found


@pytest.mark.slow
def test_a_video_copied_slowly_over_smb_is_indexed_once_complete_with_its_moments(
    tmp_path: Path,
    smb_vault: tuple[Smbd, VaultProcess],
) -> None:
    """A phone uploads a clip over SMB in chunks with pauses longer than settle_seconds,
    keeping the file open (an MP4's index is written last: a half copy cannot be read);
    vaultd waits for the close, analyzes it once and finds each scene's moment."""
    smbclient = pytest.importorskip("smbclient")
    from skimage import data

    from helpers.videos import make_clip

    _smbd, vault = smb_vault
    clip = make_clip(
        tmp_path / "made" / "VID_0001.mp4",
        [(data.coffee(), 3.0), (data.chelsea(), 3.0)],
        size=(1280, 720),
        preset="veryfast",
    ).read_bytes()
    share = tmp_path / "photos"
    slow_smb_write(smbclient, vault, share, "VID_0001.mp4", clip, chunks=5)
    vault.wait_idle(expect_done=1, timeout=120)
    shown = vault.show(share / "VID_0001.mp4")
    assert shown["size"] == len(clip) and shown["attempts"] == 0 and shown["kind"] == "video"
    assert analysis_runs(vault, share / "VID_0001.mp4") == 1
    at = {t["tag"]: t["at"] for t in shown["tags"]}
    assert 0 <= at["Food|Drink"] < 3.0 and 3.0 <= at["Animals|Cat"] < 6.0, at
    assert len(re.findall(r"queued photos/\S*VID_0001\.mp4 ", vault.log())) == 1
