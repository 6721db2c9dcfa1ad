"""The share-root rule on real folders: what counts as an outage."""

from __future__ import annotations

from pathlib import Path

from photovault.watch.root import probe


def test_a_present_readable_root_is_usable_and_keeps_its_identity_across_a_rename(
    tmp_path: Path,
) -> None:
    root = tmp_path / "share"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"x")
    first = probe(root, lambda: 1)
    assert first.ok and first.ident is not None
    root.rename(tmp_path / "back")
    (tmp_path / "back").rename(root)
    assert probe(root, lambda: 1).ident == first.ident


def test_a_missing_root_is_an_outage(tmp_path: Path) -> None:
    state = probe(tmp_path / "gone", lambda: 5)
    assert not state.ok and state.ident is None and "missing" in (state.problem or "")


def test_a_root_that_is_a_file_is_an_outage(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    state = probe(tmp_path / "f", lambda: 5)
    assert not state.ok and "not a folder" in (state.problem or "")


def test_an_empty_root_is_an_outage_only_while_the_catalog_knows_files_of_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    asked: list[int] = []

    def catalogued(n: int):
        return lambda: asked.append(n) or n

    assert probe(tmp_path / "empty", catalogued(0)).ok
    state = probe(tmp_path / "empty", catalogued(12))
    assert not state.ok and "empty" in (state.problem or "") and "12" in (state.problem or "")
    assert not probe(tmp_path / "empty", catalogued(-1)).ok  # unknown: be careful
    (tmp_path / "empty" / ".keep").write_bytes(b"")
    assert probe(tmp_path / "empty", catalogued(12)).ok
    assert asked == [0, 12, -1]  # the catalog is asked only about an empty root
