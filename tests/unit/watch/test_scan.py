"""The reconcile scan on real folders: outages are not deletions, symlinks are not
followed, a chmod gives a quarantined file another try.

Permission errors cannot happen to root, so the tests that need one run the scan
in a child process that has given up root's power to read any file (setpriv).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photovault.catalog.store import Catalog
from photovault.watch.scan import reconcile
from photovault.watch.settle import SettleTracker

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
needs_unprivileged = pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"),
    reason="as root, needs setpriv to give up the power to read any file",
)


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "trip").mkdir(parents=True)
    for rel in ("a.jpg", "b.jpg", "trip/c.jpg", "trip/d.jpg"):
        (root / rel).write_bytes(rel.encode() * 10)
    old = time.time() - 60  # settled long ago
    for p in root.rglob("*.jpg"):
        os.utime(p, (old, old))
    return root


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "c.sqlite3")


def scan(share: Path, catalog: Catalog, name: str = "s"):
    tracker = SettleTracker(0.2, 1.0, lambda *a: None)
    return reconcile(name, share, catalog, tracker, settle_seconds=0.2)


def test_a_first_scan_catalogues_every_photo(share: Path, catalog: Catalog) -> None:
    r = scan(share, catalog)
    assert r.problem is None and r.queued == 4
    assert sorted(catalog.known("s")) == ["a.jpg", "b.jpg", "trip/c.jpg", "trip/d.jpg"]


def test_a_share_renamed_away_is_not_scanned_and_nothing_is_forgotten(
    share: Path, catalog: Catalog
) -> None:
    scan(share, catalog)
    share.rename(share.with_name("away"))
    r = scan(share, catalog)
    assert r.problem is not None and "missing" in r.problem
    assert r.forgotten == 0 and len(catalog.known("s")) == 4
    assert "s" in catalog.last_scans()  # the first scan's time, not advanced by the aborted one
    share.with_name("away").rename(share)
    again = scan(share, catalog)
    assert again.problem is None and again.forgotten == 0 and again.queued == 0


def test_an_empty_root_with_catalogued_photos_looks_unmounted_and_forgets_nothing(
    share: Path, catalog: Catalog
) -> None:
    scan(share, catalog)
    share.rename(share.with_name("disk"))
    share.mkdir()  # the bare mount point left by an unmounted disk
    r = scan(share, catalog)
    assert r.problem is not None and "empty" in r.problem and "4" in r.problem
    assert len(catalog.known("s")) == 4


def test_an_empty_new_share_is_no_problem(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "new").mkdir()
    r = scan(tmp_path / "new", catalog)
    assert r.problem is None and r.seen == 0


def test_deletions_are_still_believed_beside_a_present_root(share: Path, catalog: Catalog) -> None:
    scan(share, catalog)
    shutil.rmtree(share / "trip")
    (share / "a.jpg").unlink()
    r = scan(share, catalog)
    assert r.problem is None and r.forgotten == 3
    assert list(catalog.known("s")) == ["b.jpg"]


def test_a_root_that_is_a_file_is_an_outage(share: Path, catalog: Catalog) -> None:
    scan(share, catalog)
    shutil.rmtree(share)
    share.write_bytes(b"not a folder")
    r = scan(share, catalog)
    assert r.problem is not None and "not a folder" in r.problem
    assert len(catalog.known("s")) == 4


def test_the_scan_does_not_follow_a_symlink_loop(share: Path, catalog: Catalog) -> None:
    (share / "trip" / "up").symlink_to("..")
    (share / "elsewhere").symlink_to(share / "trip")
    r = scan(share, catalog)
    assert r.problem is None
    assert sorted(catalog.known("s")) == ["a.jpg", "b.jpg", "trip/c.jpg", "trip/d.jpg"]


def test_a_quarantined_file_whose_mode_changed_is_retried(share: Path, catalog: Catalog) -> None:
    scan(share, catalog)
    for rel in ("a.jpg", "b.jpg"):
        row = catalog.get("s", rel)
        assert row is not None
        catalog.fail(row.id, "image file is truncated", permanent=True)
    time.sleep(0.05)  # the kernel's ctime clock is coarse
    os.chmod(share / "a.jpg", 0o640)  # b.jpg is left as it was
    r = scan(share, catalog)
    assert r.retried == 1
    a, b = catalog.get("s", "a.jpg"), catalog.get("s", "b.jpg")
    assert a is not None and (a.state, a.attempts, a.last_error) == ("pending", 0, None)
    assert b is not None and b.state == "quarantined"
    assert scan(share, catalog).retried == 0  # b.jpg unchanged: not retried again and again


CHILD = """
import json, sys
from pathlib import Path
from photovault.catalog.store import Catalog
from photovault.watch.scan import reconcile
from photovault.watch.settle import SettleTracker
share, db = Path(sys.argv[1]), Path(sys.argv[2])
catalog = Catalog(db)
r = reconcile("s", share, catalog, SettleTracker(0.2, 1.0, lambda *a: None), settle_seconds=0.2)
print(json.dumps({"problem": r.problem, "forgotten": r.forgotten, "kept": r.kept,
                  "retried": r.retried, "errors": r.errors}))
"""


def scan_unprivileged(share: Path, db: Path) -> dict:
    wrapper = NO_DAC if os.geteuid() == 0 else []
    out = subprocess.run(
        [*wrapper, sys.executable, "-c", CHILD, str(share), str(db)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_unprivileged
def test_an_unreadable_folder_keeps_its_files(share: Path, catalog: Catalog) -> None:
    scan(share, catalog)
    (share / "a.jpg").unlink()
    os.chmod(share / "trip", 0o000)
    try:
        r = scan_unprivileged(share, catalog.path)
    finally:
        os.chmod(share / "trip", 0o755)
    assert r["problem"] is None and r["errors"] == 1
    assert (r["forgotten"], r["kept"]) == (1, 2)
    assert sorted(catalog.known("s")) == ["b.jpg", "trip/c.jpg", "trip/d.jpg"]


@needs_unprivileged
def test_an_unreadable_root_is_an_outage(share: Path, catalog: Catalog) -> None:
    scan(share, catalog)
    os.chmod(share, 0o000)
    try:
        r = scan_unprivileged(share, catalog.path)
    finally:
        os.chmod(share, 0o755)
    assert r["problem"] is not None and "cannot be read" in r["problem"]
    assert r["forgotten"] == 0 and len(catalog.known("s")) == 4


@needs_unprivileged
def test_a_file_quarantined_for_permission_is_retried_once_its_folder_opens(
    share: Path, catalog: Catalog
) -> None:
    scan(share, catalog)
    row = catalog.get("s", "trip/c.jpg")
    assert row is not None
    catalog.fail(row.id, "cannot open: Permission denied", permanent=True)
    os.chmod(share / "trip", 0o000)  # as when it was quarantined
    try:
        assert scan_unprivileged(share, catalog.path)["retried"] == 0
    finally:
        os.chmod(share / "trip", 0o755)
    assert scan_unprivileged(share, catalog.path)["retried"] == 1
    after = catalog.get("s", "trip/c.jpg")
    assert after is not None and after.state == "pending"


def add_settled(share: Path, n: int) -> None:
    old = time.time() - 60
    for i in range(n):
        p = share / f"x{i}.jpg"
        p.write_bytes(b"x" * (i + 1))
        os.utime(p, (old, old))


def scan_again(share: Path, catalog: Catalog, **kw):
    tracker = SettleTracker(0.2, 1.0, lambda *a: None)
    return reconcile("s", share, catalog, tracker, settle_seconds=0.2, **kw)


def test_a_stray_file_in_the_mount_point_of_an_unmounted_disk_forgets_nothing(
    share: Path, catalog: Catalog
) -> None:
    first = scan(share, catalog)
    assert first.dev == os.stat(share).st_dev
    share.rename(share.with_name("disk"))
    share.mkdir()  # the bare mount point (on the parent's device in real life) ...
    (share / "stray.jpg").write_bytes(b"x")  # ... with one file written into it
    r = scan_again(share, catalog, expected_dev=first.dev + 1)
    assert r.problem is not None and r.held == 4 and r.forgotten == 0 and r.dev is None
    assert "4 of 4 photos of share s are gone" in r.problem
    assert "another device" in r.problem and "vaultctl rescan s --forget-missing" in r.problem
    assert sorted(catalog.known("s")) == ["a.jpg", "b.jpg", "trip/c.jpg", "trip/d.jpg"]


def test_forgetting_most_of_a_large_share_at_once_waits_for_a_person(
    share: Path, catalog: Catalog
) -> None:
    add_settled(share, 26)
    scan(share, catalog)
    for i in range(25):
        (share / f"x{i}.jpg").unlink()
    shutil.rmtree(share / "trip")
    r = scan(share, catalog)  # 27 of 30 gone: more than half and more than 20
    assert r.problem is not None and r.held == 27 and r.forgotten == 0
    assert "27 of 30 photos" in r.problem and "--forget-missing" in r.problem
    assert len(catalog.known("s")) == 30

    confirmed = scan_again(share, catalog, forget_missing=True)
    assert confirmed.problem is None and confirmed.forgotten == 27
    assert sorted(catalog.known("s")) == ["a.jpg", "b.jpg", "x25.jpg"]


def test_a_few_deletions_are_believed_after_the_root_device_changed(
    share: Path, catalog: Catalog
) -> None:
    first = scan(share, catalog)
    (share / "a.jpg").unlink()  # 1 of 4: not most of the share
    r = scan_again(share, catalog, expected_dev=first.dev + 1)
    assert r.problem is None and r.forgotten == 1 and r.dev == first.dev


def test_many_deletions_that_are_not_most_of_a_share_are_believed(
    share: Path, catalog: Catalog
) -> None:
    add_settled(share, 60)
    scan(share, catalog)
    for i in range(30):  # 30 of 64
        (share / f"x{i}.jpg").unlink()
    r = scan(share, catalog)
    assert r.problem is None and r.forgotten == 30
