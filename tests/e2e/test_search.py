"""Search end to end: real vaultd, real tagger, real LanceDB, real users for permissions."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from helpers.vault import VaultProcess
from photovault.query.protocol import encode_request


def skimage_jpeg(name: str, path: Path, scale: float = 1.0) -> Path:
    from skimage import data

    img = Image.fromarray(getattr(data, name)())
    if scale != 1.0:
        img = img.resize((int(img.width * scale), int(img.height * scale)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90)
    return path


def exif(path: Path, *tags: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *tags, str(path)], check=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos with real metadata, written once for the module."""
    root = tmp_path_factory.mktemp("library")
    cat = skimage_jpeg("chelsea", root / "pets" / "chelsea.jpg")
    exif(cat, "-DateTimeOriginal=2019:06:01 10:00:00", "-Make=Canon", "-Model=Canon EOS 80D")
    coffee = skimage_jpeg("coffee", root / "trips" / "paris" / "coffee.jpg")
    exif(
        coffee,
        "-DateTimeOriginal=2023:04:02 09:30:00",
        "-GPSLatitude=48.8566",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=2.3522",
        "-GPSLongitudeRef=E",
        "-Make=FUJIFILM",
        "-Model=X-T3",
    )
    skimage_jpeg("coffee", root / "trips" / "paris" / "coffee-small.jpg", scale=0.5)
    rocket = skimage_jpeg("rocket", root / "space" / "rocket.jpg")
    exif(
        rocket,
        "-DateTimeOriginal=2021:07:20 15:00:00",
        "-GPSLatitude=28.5729",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=80.649",
        "-GPSLongitudeRef=W",
    )
    skimage_jpeg("astronaut", root / "space" / "astronaut.jpg")
    return root


@pytest.fixture(scope="module")
def search_vault(library: Path, tmp_path_factory, real_tagger_store: Path):
    base = tmp_path_factory.mktemp("vault")
    shutil.copytree(library, base / "photos")
    shutil.copytree(real_tagger_store, base / "state" / "models")
    from helpers.vault import write_config

    vault = VaultProcess(write_config(base, analyzers=["metadata", "tagger"]), base)
    vault.start()
    vault.wait_idle(expect_done=5, timeout=180)
    yield vault, base / "photos"
    vault.stop()


def search(vault: VaultProcess, *args: str) -> list[dict]:
    r = vault.ctl("search", *args, "--json", check=False)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout) if r.returncode == 0 else []


def names(results: list[dict]) -> list[str]:
    return [Path(r["path"]).name for r in results]


def test_a_tag_finds_the_cat_and_only_the_cat(search_vault) -> None:
    vault, _ = search_vault
    assert names(search(vault, "--tag", "cat")) == ["chelsea.jpg"]
    assert names(search(vault, "--tag", "Animals|Cat")) == ["chelsea.jpg"]
    assert names(search(vault, "cat"))[0] == "chelsea.jpg"


def test_date_place_camera_and_path_filters_narrow_the_results(search_vault) -> None:
    vault, _ = search_vault
    assert set(names(search(vault, "--after", "2020-01-01", "--before", "2022-01-01"))) == {
        "rocket.jpg"
    }
    assert names(search(vault, "--near", "48.85,2.35,10")) == ["coffee.jpg"]
    assert names(search(vault, "--camera", "canon")) == ["chelsea.jpg"]
    assert set(names(search(vault, "--path", "trips/*"))) == {"coffee.jpg", "coffee-small.jpg"}
    assert set(names(search(vault, "--path", "space/*", "--after", "2021-01-01"))) == {"rocket.jpg"}
    assert search(vault, "--tag", "cat", "--path", "space/*") == []


def test_similar_puts_the_resized_copy_first(search_vault) -> None:
    vault, photos = search_vault
    results = json.loads(
        vault.ctl("similar", str(photos / "trips" / "paris" / "coffee.jpg"), "--json").stdout
    )
    assert names(results)[0] == "coffee-small.jpg"
    assert results[0]["near_duplicate"] is True


def test_human_output_exit_codes_and_contact_sheet(search_vault, tmp_path: Path) -> None:
    vault, _ = search_vault
    out = vault.ctl("search", "--tag", "cat").stdout
    assert out.splitlines()[0].split() == ["score", "path", "date", "tags", "people"]
    assert "chelsea.jpg" in out and "2019-06-01 10:00" in out
    assert vault.ctl("search", "--tag", "unicorn", check=False).returncode == 1
    assert vault.ctl("search", check=False).returncode == 2
    # --near takes coordinates or a place name ("north" is a region of Cameroon)
    assert vault.ctl("search", "--near", "1,2,3,4", check=False).returncode == 2
    assert vault.ctl("search", "--near", "Nowhereville", check=False).returncode == 2
    sheet = tmp_path / "sheet.jpg"
    vault.ctl("search", "--path", "*", "--sheet", str(sheet))
    assert Image.open(sheet).size[0] > 200


def test_hostile_requests_get_errors_and_the_daemon_keeps_serving(search_vault) -> None:
    vault, photos = search_vault
    r = vault.ctl("show", str(photos / ".." / ".." / "etc" / "passwd"), check=False)
    assert r.returncode == 1 and "not inside any watched share" in r.stderr
    for payload in (
        b"\x00\xff{{{\n",
        b'{"v":1,"op":"search","args":{"limit":"all"}}\n',
        b'{"v":1,"op":"search","args":{"filters":{"sql":"1=1"}}}\n',
        b'{"v":1,"op":"rm -rf"}\n',
    ):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(vault.socket))
            s.sendall(payload)
            reply = json.loads(s.makefile("rb").readline())
            assert reply["ok"] is False, payload
    assert names(search(vault, "--tag", "cat")) == ["chelsea.jpg"]


# -- permissions, with real users -------------------------------------------------------


def ask_as(user: str, sock: Path, op: str, **args) -> dict:
    """Run one request from a child process that has become `user`."""
    pw = pwd.getpwnam(user)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.setgroups(os.getgrouplist(user, pw.pw_gid))
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(20)
                s.connect(str(sock))
                s.sendall(encode_request(op, args))
                os.write(w, s.makefile("rb").readline())
        except BaseException as exc:  # report, never return into pytest
            os.write(w, json.dumps({"ok": False, "error": {"message": repr(exc)}}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root to create real users"
)
def test_each_user_sees_only_the_photos_they_could_open(
    tmp_path: Path, vault_factory, real_tagger_store: Path
) -> None:
    tag = f"pv{os.getpid() % 100000}"
    group, alice, bob = f"{tag}g", f"{tag}a", f"{tag}b"
    subprocess.run(["groupadd", group], check=True)
    modes: dict[Path, int] = {}
    try:
        for user in (alice, bob):
            subprocess.run(["useradd", "-M", "-N", "-g", group, user], check=True)
        # pytest's temp root is private (0700): let the users traverse to the socket.
        for parent in (tmp_path.parent, tmp_path.parent.parent):
            modes[parent] = parent.stat().st_mode & 0o777
            os.chmod(parent, modes[parent] | 0o111)
        os.chmod(tmp_path, 0o755)
        photos = tmp_path / "photos"
        public = skimage_jpeg("chelsea", photos / "public.jpg")
        private = skimage_jpeg("chelsea", photos / "alice" / "private.jpg", scale=0.8)
        os.chmod(photos / "alice", 0o700)
        os.chown(photos / "alice", pwd.getpwnam(alice).pw_uid, -1)
        os.chown(private, pwd.getpwnam(alice).pw_uid, -1)
        os.chmod(private, 0o600)
        os.chmod(public, 0o644)
        vault = vault_factory(
            models_from=real_tagger_store, analyzers=["metadata", "tagger"], socket_group=group
        )
        vault.wait_idle(expect_done=2, timeout=120)
        sock_group = grp.getgrgid(vault.socket.stat().st_gid).gr_name
        assert sock_group == group and vault.socket.stat().st_mode & 0o777 == 0o660

        a = ask_as(alice, vault.socket, "search", filters={"tags": ["cat"]})
        b = ask_as(bob, vault.socket, "search", filters={"tags": ["cat"]})
        assert a.get("ok") and b.get("ok"), (a, b)
        assert sorted(names(a["result"]["results"])) == ["private.jpg", "public.jpg"], a
        assert names(b["result"]["results"]) == ["public.jpg"], b
        shown = ask_as(bob, vault.socket, "show", path=str(private))
        assert shown["ok"] is False and shown["error"]["code"] == "not_found"
        assert names(search(vault, "--tag", "cat")) != []  # root sees everything
    finally:
        for parent, mode in modes.items():
            os.chmod(parent, mode)
        for user in (alice, bob):
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)
