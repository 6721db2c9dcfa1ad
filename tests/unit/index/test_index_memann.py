"""The in-memory vector index: nearest neighbours, writes and deletes, cells,
and PhotoIndex serving unfiltered semantic searches from it."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import numpy as np

from photovault.index import Filters, IndexSettings, PhotoIndex, PhotoRecord, memann
from photovault.index.memann import AnnSettings, Facts, MemoryAnn, micros, quantize

from .conftest import DIM, photo, unit


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def around(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """Unit vectors scattered around random ones of `centres` (photos of a scene)."""
    dim = centres.shape[1]
    v = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dim)).astype(
        np.float32
    ) * (0.6 / np.sqrt(dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def loaded(vectors: np.ndarray, settings: AnnSettings | None = None) -> MemoryAnn:
    m = MemoryAnn(vectors.shape[1], settings)
    ids = np.arange(len(vectors))

    def batches():
        for lo in range(0, len(vectors), 1000):
            yield ids[lo : lo + 1000], ids[lo : lo + 1000] + 10_000, vectors[lo : lo + 1000]

    m.load(batches, expected=len(vectors))
    return m


def exact_top(vectors: np.ndarray, q: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-(vectors @ q))[:k].tolist())


def test_int8_codes_keep_cosines_within_two_thousandths():
    rng = np.random.default_rng(0)
    v = random_unit(rng, 200, 512)
    codes, scale = quantize(v)
    back = codes.astype(np.float32) * scale[:, None]
    assert codes.dtype == np.int8
    assert np.abs((back * v).sum(axis=1) - 1.0).max() < 2e-3
    q = random_unit(rng, 1, 512)[0]
    assert np.abs(back @ q - v @ q).max() < 2e-3


def test_below_the_training_size_every_vector_is_scanned_and_the_nearest_comes_first():
    rng = np.random.default_rng(1)
    v = random_unit(rng, 3000, 64)
    m = loaded(v, AnnSettings(train_rows=5000))
    assert m.ready and m.cells == 0 and len(m) == 3000
    q = unit(v[1234] + 0.01 * rng.standard_normal(64))
    r = m.search(q, 10)
    assert r.ids[0] == 1234 and r.rowids[0] == 11234
    assert set(r.ids.tolist()) == exact_top(v, q, 10)
    assert np.all(np.diff(r.scores) <= 0)


def test_cells_are_trained_for_the_expected_size_and_keep_recall_on_clustered_vectors():
    rng = np.random.default_rng(2)
    centres = random_unit(rng, 200, 64)
    v = around(rng, centres, 40_000)
    m = loaded(v, AnnSettings(train_rows=10_000, cell_rows=500, nprobe=16))
    assert m.cells == 80
    queries = around(rng, centres, 30)
    recall = np.mean(
        [len(set(m.search(q, 20).ids.tolist()) & exact_top(v, q, 20)) / 20 for q in queries]
    )
    assert recall >= 0.95


def test_writes_replace_move_and_delete_vectors():
    rng = np.random.default_rng(3)
    v = random_unit(rng, 500, 32)
    m = loaded(v, AnnSettings(train_rows=100, cell_rows=50))
    assert m.cells == 10
    # replace photo 7's vector: it is found at its new place only
    new = unit(rng.standard_normal(32))
    m.put(np.array([7]), [new])
    assert m.search(new, 1).ids.tolist() == [7]
    assert 7 not in m.search(v[7], 5).ids.tolist()
    # a vector that went away (null, wrong length, NaN) takes the photo out
    m.put(np.array([8, 9, 10]), [None, np.ones(5), np.full(32, np.nan)])
    for i in (8, 9, 10):
        assert i not in m.search(v[i], 5).ids.tolist()
    m.remove([11])
    assert 11 not in m.search(v[11], 5).ids.tolist()
    assert len(m) == 500 - 4
    # new photos land in their cells and are found
    more = random_unit(rng, 20, 32)
    m.put(np.arange(1000, 1020), list(more))
    for i in range(20):
        assert m.search(more[i], 1).ids[0] == 1000 + i
    assert sorted(m.unknown_rowids(100).tolist()) == [7, *range(1000, 1020)]
    m.set_rowids(np.array([1000, 7]), np.array([5, 6]))
    assert m.search(more[0], 1).rowids[0] == 5
    assert 1000 not in m.unknown_rowids(100)


def test_retraining_after_the_library_doubled_keeps_every_row():
    rng = np.random.default_rng(4)
    v = random_unit(rng, 2000, 16)
    m = loaded(v[:1000], AnnSettings(train_rows=500, cell_rows=100))
    assert m.cells == 10
    m.put(np.arange(1000, 2000), list(v[1000:]))
    m.maintain()
    assert m.cells == 20 and len(m) == 2000
    for i in (0, 999, 1000, 1999):
        assert m.search(v[i], 1).ids[0] == i


def decoded(m: MemoryAnn, i: int) -> tuple[np.ndarray, float]:
    """What the index holds for photo `i`: its vector as decoded, and the code's step."""
    c, off = int(m._pos_cell[i]), int(m._pos_off[i])
    cell = m._cells[c]
    base = 0.0 if m._means is None else m._means[c]
    return cell.codes[off] * cell.scale[off] + base, float(cell.scale[off])


def test_trained_cells_code_rows_relative_to_their_mean_so_scores_are_finer():
    rng = np.random.default_rng(21)
    centres = random_unit(rng, 100, 64)
    v = around(rng, centres, 20_000)
    m = loaded(v, AnnSettings(train_rows=5_000, cell_rows=50, nprobe=400))
    q = around(rng, centres, 1)[0]
    got = m.search(q, len(v))  # every cell probed: every row scored
    err = np.abs(got.scores - v[got.ids] @ q)
    codes, scale = quantize(v)  # the same int8 codes of the vectors themselves
    plain = np.abs((codes * scale[:, None]) @ q - v @ q)
    assert len(got.ids) == len(v)
    # cells finer than the scenes: residuals ~half the vector's length
    assert err.mean() < 0.7 * plain.mean()


def test_rows_the_load_read_before_training_are_coded_once_from_their_vectors():
    rng = np.random.default_rng(22)
    centres = random_unit(rng, 40, 64)
    v = around(rng, centres, 6_000)
    m = loaded(v, AnnSettings(train_rows=2_000, cell_rows=50))  # trained after 4,000 rows
    assert m.cells == 120
    for i in range(0, 6_000, 7):
        back, step = decoded(m, i)
        # one rounding: half a step, plus float16's ~2.4e-4 for the rows held
        # until training (a second rounding would add up to half the old step)
        assert np.abs(back - v[i]).max() <= step / 2 + 2.5e-4, i


def test_a_write_during_the_load_wins_over_the_vector_held_for_training():
    rng = np.random.default_rng(23)
    v = random_unit(rng, 3_000, 32)
    new = unit(rng.standard_normal(32))
    m = MemoryAnn(32, AnnSettings(train_rows=1_000, cell_rows=50))
    ids = np.arange(3_000)

    def batches():
        yield ids[:1000], ids[:1000], v[:1000]
        m.put(np.array([5]), [new])  # committed after the scan read photo 5
        for lo in range(1000, 3000, 1000):
            yield ids[lo : lo + 1000], ids[lo : lo + 1000], v[lo : lo + 1000]

    m.load(batches, expected=3_000)
    assert m.cells == 60
    assert m.search(new, 1).ids.tolist() == [5]
    back, step = decoded(m, 5)
    assert np.abs(back - new).max() <= step / 2 + 1e-6


def test_regrouping_into_many_more_cells_puts_rows_in_their_nearest_cell():
    rng = np.random.default_rng(24)
    centres = random_unit(rng, 300, 32)
    v = around(rng, centres, 12_000)
    m = loaded(v[:6_000], AnnSettings(train_rows=1_000, cell_rows=20, nprobe=16))
    assert m.cells == 300
    m.put(np.arange(6_000, 12_000), list(v[6_000:]))
    m.maintain()
    assert m.cells == 600 and len(m) == 12_000  # 600 cells: 32 candidates per old cell
    best = (v @ m._centroids.T).argmax(axis=1)
    assert np.mean(m._pos_cell[:12_000] == best) >= 0.98
    queries = around(rng, centres, 30)
    recall = np.mean(
        [len(set(m.search(q, 20).ids.tolist()) & exact_top(v, q, 20)) / 20 for q in queries]
    )
    assert recall >= 0.95


def test_while_cells_are_regrouped_the_index_says_it_cannot_serve():
    rng = np.random.default_rng(12)
    v = random_unit(rng, 400, 16)
    m = loaded(v[:200], AnnSettings(train_rows=100, cell_rows=50))
    seen: list[bool] = []
    regroup = m._regroup

    def spy(*args: object) -> None:  # PhotoIndex asks usable() before every search
        seen.append(m.usable())
        regroup(*args)  # type: ignore[arg-type]

    m._regroup = spy  # type: ignore[method-assign]
    m.put(np.arange(200, 400), list(v[200:]))
    m.maintain()
    assert seen == [False]
    assert m.usable() and m.cells == 8


def test_k_means_runs_without_the_lock_so_writes_and_searches_go_on(monkeypatch):
    rng = np.random.default_rng(25)
    v = random_unit(rng, 800, 16)
    m = loaded(v[:400], AnnSettings(train_rows=200, cell_rows=50))
    assert m.cells == 8
    new = unit(rng.standard_normal(16))
    during: dict[str, object] = {}
    kmeans = memann.spherical_kmeans

    def busy_kmeans(*args, **kwargs):  # a write and a search from another thread, meanwhile
        def other() -> None:
            m.put(np.array([900]), [new])
            during["usable"] = m.usable()
            during["found"] = m.search(new, 1).ids.tolist()

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        during["waited"] = t.is_alive()
        return kmeans(*args, **kwargs)

    monkeypatch.setattr(memann, "spherical_kmeans", busy_kmeans)
    m.put(np.arange(400, 800), list(v[400:]))
    m.maintain()
    assert during == {"usable": True, "found": [900], "waited": False}
    assert m.cells == 16 and len(m) == 801  # the write made meanwhile was regrouped too
    assert m.search(new, 1).ids.tolist() == [900]


def test_compaction_drops_dead_rows_and_keeps_the_live_ones_findable():
    rng = np.random.default_rng(5)
    v = random_unit(rng, 400, 16)
    m = loaded(v)
    m.remove(range(0, 300))
    m.maintain()
    assert sum(c.n for c in m._cells) == 100
    for i in (300, 350, 399):
        assert m.search(v[i], 1).ids[0] == i


def test_writes_during_loading_win_over_what_the_scan_read():
    rng = np.random.default_rng(6)
    v = random_unit(rng, 300, 16)
    m = MemoryAnn(16)
    newer = unit(rng.standard_normal(16))
    gate = threading.Event()

    def batches():
        yield np.arange(0, 100), np.arange(0, 100), v[:100]
        gate.set()
        # a write and a delete commit while the scan goes on; the scan still
        # returns their old rows
        m.put(np.array([150]), [newer])
        m.remove([160])
        yield np.arange(100, 300), np.arange(100, 300), v[100:]

    m.load(batches)
    assert gate.is_set()
    assert m.search(newer, 1).ids[0] == 150
    assert 150 not in m.search(v[150], 3).ids.tolist()
    assert 160 not in m.search(v[160], 3).ids.tolist()
    assert len(m) == 299


def test_dates_and_cameras_filter_in_memory_and_a_single_match_is_found_in_any_cell():
    rng = np.random.default_rng(13)
    v = random_unit(rng, 2000, 16)
    m = MemoryAnn(16, AnnSettings(train_rows=500, cell_rows=50, nprobe=2))
    when = [datetime(2019, 1, 1) + timedelta(days=int(i)) for i in range(2000)]
    when[5] = None
    cams = ["Canon EOS R5" if i % 10 == 0 else "NIKON Z6" for i in range(2000)]
    cams[7] = None
    cams[1234] = "FUJIFILM X-T4"
    ids = np.arange(2000)
    m.load(lambda: iter([(ids, ids, v, [micros(t) for t in when], cams)]), expected=2000)
    assert m.cells == 40
    q = v[3]
    got = m.search(q, 50, facts=Facts(camera="canon"))
    assert len(got.ids) == 50 and all(i % 10 == 0 for i in got.ids)
    # the one Fujifilm photo, wherever its cell, although only 2 cells are probed
    assert m.search(q, 5, facts=Facts(camera="fuji")).ids.tolist() == [1234]
    assert m.search(q, 5, facts=Facts(camera="leica")).ids.size == 0
    # after inclusive, before exclusive, wall clock; no capture time never matches
    got = m.search(q, 100, facts=Facts(after=date(2019, 1, 3), before=date(2019, 1, 10)))
    assert sorted(got.ids.tolist()) == [2, 3, 4, 6, 7, 8]
    got = m.search(q, 10, facts=Facts(before=datetime(2019, 1, 1, 0, 0, 1)))
    assert got.ids.tolist() == [0]
    # writes carry their facts along
    m.put(np.array([3]), [v[3]], taken=[datetime(2030, 5, 1, 12)], cameras=["Leica Q2"])
    assert m.search(q, 5, facts=Facts(camera="leica", after=date(2030, 1, 1))).ids.tolist() == [3]


def test_ids_the_index_cannot_hold_turn_it_off_and_it_says_why():
    m = MemoryAnn(4)
    m.load(lambda: iter(()))
    m.put(np.array([1 << 40]), [np.ones(4)])
    assert not m.usable() and "outside" in (m.failed or "")


# -- PhotoIndex ------------------------------------------------------------------


def test_photo_index_serves_unfiltered_searches_from_memory_and_agrees_with_lancedb(make_index):
    idx = make_index(memory_train_rows=10)
    rng = np.random.default_rng(7)
    vecs = random_unit(rng, 300, DIM)
    idx.upsert(
        photo(i, vector=vecs[i], tags=[{"tag": f"t{i}", "confidence": 0.5}]) for i in range(300)
    )
    idx.flush()
    q = unit(vecs[42] + 0.05 * rng.standard_normal(DIM))
    before = idx.search(q, None, Filters(), 10)  # LanceDB: memory index not loaded
    assert idx.memory_status()["state"] == "not loaded"

    idx.load_memory()

    assert idx.memory_status() | {"memory_mib": 0} == {
        "state": "ready",
        "serving": True,
        "reason": None,
        "vectors": 300,
        "cells": 1,
        "memory_mib": 0,
    }
    after = idx.search(q, None, Filters(), 10)
    assert [h.id for h in after] == [h.id for h in before]
    assert [h.path for h in after] == [h.path for h in before]
    assert after[0].tags == ["t42"] and after[0].abs_path == "/srv/photos/misc/IMG_0042.jpg"
    # int8 steps at 16 dimensions are coarse: cosines within 5e-3 (at 512: 1.4e-3)
    np.testing.assert_allclose([h.score for h in after], [h.score for h in before], atol=5e-3)


def test_memory_index_follows_writes_moves_and_deletes_of_the_photo_index(make_index):
    idx = make_index(memory_train_rows=10)
    rng = np.random.default_rng(8)
    vecs = random_unit(rng, 50, DIM)
    idx.upsert(photo(i, vector=vecs[i]) for i in range(50))
    idx.flush()
    idx.load_memory()
    # new photo
    idx.upsert([photo(100, vector=vecs[3] * -1)])
    idx.flush()
    assert idx.search(-vecs[3], None, Filters(), 1)[0].id == 100
    # its vector changes: found at the new place, not the old
    idx.upsert([photo(100, vector=vecs[5])])
    idx.flush()
    assert {h.id for h in idx.search(vecs[5], None, Filters(), 2)} == {5, 100}
    assert idx.search(-vecs[3], None, Filters(), 1)[0].id != 100
    # moved: the hit shows the new path
    idx.move("main", "misc/IMG_0007.jpg", "trips/beach.jpg")
    hit = idx.search(vecs[7], None, Filters(), 1)[0]
    assert (hit.id, hit.path) == (7, "trips/beach.jpg")
    # deleted: gone from results
    idx.delete("main", "trips/beach.jpg")
    assert 7 not in [h.id for h in idx.search(vecs[7], None, Filters(), 5)]
    # row ids learnt after writes make hits come by row id; results stay the same
    assert idx.memory.unknown_rowids(10).size > 0
    idx.refresh_memory()
    assert idx.memory.unknown_rowids(10).size == 0
    assert idx.search(vecs[9], None, Filters(), 1)[0].id == 9


def test_a_stale_row_id_falls_back_to_the_photo_id(make_index):
    idx = make_index(memory_train_rows=10)
    rng = np.random.default_rng(9)
    vecs = random_unit(rng, 20, DIM)
    idx.upsert(photo(i, vector=vecs[i]) for i in range(20))
    idx.flush()
    idx.load_memory()
    # point photo 4's row id at photo 5's row: the fetch must notice
    r5 = idx.memory.search(vecs[5], 1).rowids[0]
    idx.memory.set_rowids(np.array([4]), np.array([r5]))
    hits = idx.search(vecs[4], None, Filters(), 2)
    assert [h.id for h in hits[:1]] == [4] and hits[0].path == "misc/IMG_0004.jpg"
    assert len({h.id for h in hits}) == 2


def test_filtered_and_permission_checked_searches(make_index):
    idx = make_index(memory_train_rows=10)
    rng = np.random.default_rng(10)
    vecs = random_unit(rng, 60, DIM)
    idx.upsert(photo(i, vector=vecs[i], camera="Canon" if i % 2 else "Nikon") for i in range(60))
    idx.flush()
    idx.load_memory()
    q = vecs[10]
    # SQL filters go to LanceDB, the Python check (permissions) to the memory index
    assert all(h.id % 2 for h in idx.search(q, None, Filters(camera="canon"), 10))
    f = Filters()
    f.allowed = lambda p: not p.endswith("0010.jpg")
    hits = idx.search(q, None, f, 10)
    assert 10 not in [h.id for h in hits] and len(hits) == 10


def test_date_and_camera_filters_from_memory_agree_with_lancedb(make_index):
    idx = make_index(memory_train_rows=10)
    rng = np.random.default_rng(14)
    vecs = random_unit(rng, 200, DIM)

    def taken(i: int) -> str | None:
        return None if i % 17 == 0 else f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00+02:00"

    idx.upsert(
        photo(
            i,
            vector=vecs[i],
            taken_at=taken(i),
            camera=None if i % 13 == 0 else ("Canon EOS" if i % 3 else "Nikon D850"),
        )
        for i in range(200)
    )
    idx.flush()
    cases = [
        Filters(camera="canon"),
        Filters(after=date(2021, 6, 1)),
        Filters(after=date(2021, 3, 1), before=date(2021, 5, 1), camera="NIKON"),
        Filters(camera="nobody"),
    ]
    q = vecs[0]
    lancedb_says = [[h.id for h in idx.search(q, None, f, 15)] for f in cases]
    idx.load_memory()
    assert idx.memory_status()["serving"]
    memory_says = [[h.id for h in idx.search(q, None, f, 15)] for f in cases]
    assert memory_says == lancedb_says
    assert lancedb_says[3] == [] and all(len(x) == 15 for x in lancedb_says[:2])


def test_memory_index_off_in_settings_leaves_lancedb_answering(tmp_path):
    idx = PhotoIndex(tmp_path / "i", IndexSettings(vector_dim=DIM, face_dim=4, memory_ann=False))
    idx.upsert([PhotoRecord(id=1, share="s", path="a.jpg", vector=unit(np.ones(DIM)))])
    idx.flush()
    idx.start()
    try:
        assert idx.memory_status()["state"] == "off"
        assert idx.search(unit(np.ones(DIM)), None, Filters(), 1)[0].id == 1
    finally:
        idx.close()


def test_below_its_training_size_lancedb_answers_and_the_memory_index_waits(make_index):
    idx = make_index(memory_train_rows=100)
    rng = np.random.default_rng(11)
    vecs = random_unit(rng, 150, DIM)
    idx.upsert(photo(i, vector=vecs[i]) for i in range(60))
    idx.flush()
    idx.load_memory()
    status = idx.memory_status()
    assert (status["state"], status["serving"], status["vectors"]) == ("ready", False, 60)
    assert idx.search(vecs[5], None, Filters(), 1)[0].id == 5  # LanceDB, exact
    idx.upsert(photo(i, vector=vecs[i]) for i in range(60, 150))
    idx.flush()
    idx.refresh_memory()  # the ticker's step: cells are trained once past the size
    status = idx.memory_status()
    assert (status["serving"], status["vectors"], status["cells"]) == (True, 150, 1)
    assert idx.search(vecs[120], None, Filters(), 1)[0].id == 120
