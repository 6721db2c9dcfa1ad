"""The vector index appears past the threshold and keeps recall@20 >= 0.95."""

from __future__ import annotations

import numpy as np
import pytest

from photovault.index import Filters, IndexSettings, PhotoIndex, PhotoRecord


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(
    idx: PhotoIndex,
    vectors: np.ndarray,
    start: int = 0,
    stop: int | None = None,
    chunk: int = 10_000,
) -> None:
    """Index vectors[start:stop] as photos whose id is the row number."""
    stop = len(vectors) if stop is None else stop
    for lo in range(start, stop, chunk):
        idx.upsert(
            PhotoRecord(
                id=i,
                share="s",
                path=f"d{i % 10}/{i}.jpg",
                abs_path=f"/p/d{i % 10}/{i}.jpg",
                vector=vectors[i],
                camera="Canon" if i % 10 == 3 else "Nikon",
            )
            for i in range(lo, min(lo + chunk, stop))
        )
        idx.flush()


def recall_at_20(
    idx: PhotoIndex,
    vectors: np.ndarray,
    queries: np.ndarray,
    filters: Filters | None = None,
    keep: np.ndarray | None = None,
) -> float:
    scores = queries @ vectors.T
    if keep is not None:
        scores[:, ~keep] = -np.inf
    truth = np.argsort(-scores, axis=1)[:, :20]
    found = []
    for q, t in zip(queries, truth, strict=True):
        got = {h.id for h in idx.search(q, None, filters or Filters(), 20)}
        found.append(len(got & set(t.tolist())) / 20)
    return float(np.mean(found))


def test_exact_search_is_used_below_the_threshold_and_an_index_appears_past_it(tmp_path):
    rng = np.random.default_rng(0)
    vectors = random_unit(rng, 3000, 512)
    settings = IndexSettings(
        ann_threshold=2000, ann_partitions=8, exact_below=100, flush_rows=10_000
    )
    idx = PhotoIndex(tmp_path / "index", settings)
    fill(idx, vectors, 0, 1500)
    idx.maintain()
    assert not idx.has_ann

    fill(idx, vectors, 1500)
    did = idx.maintain()

    assert idx.has_ann
    assert did["ann"]["vectors"] == 3000
    queries = random_unit(rng, 20, 512)
    assert recall_at_20(idx, vectors, queries) >= 0.95
    keep = np.arange(3000) % 10 == 3
    assert recall_at_20(idx, vectors, queries, Filters(camera="canon"), keep) >= 0.95
    idx.close()


def test_rows_added_after_the_index_was_built_are_found_and_folded_in_by_maintain(tmp_path):
    rng = np.random.default_rng(1)
    vectors = random_unit(rng, 2600, 512)
    idx = PhotoIndex(
        tmp_path / "index", IndexSettings(ann_threshold=2000, ann_partitions=8, flush_rows=10_000)
    )
    fill(idx, vectors, 0, 2500)
    idx.maintain()
    fill(idx, vectors, 2500)

    hits = idx.search(vectors[2550], None, Filters(), 5)
    assert hits[0].id == 2550

    idx.maintain()
    assert idx.photos.index_stats("vector_idx").num_unindexed_rows == 0
    assert idx.search(vectors[2550], None, Filters(), 5)[0].id == 2550
    idx.close()


@pytest.mark.slow
def test_recall_at_20_stays_above_0_95_on_100k_random_vectors(tmp_path):
    rng = np.random.default_rng(2)
    vectors = random_unit(rng, 100_000, 512)
    idx = PhotoIndex(tmp_path / "index", IndexSettings(ann_threshold=50_000, flush_rows=20_000))
    fill(idx, vectors, chunk=20_000)
    idx.maintain()
    assert idx.has_ann

    queries = random_unit(rng, 50, 512)
    assert recall_at_20(idx, vectors, queries) >= 0.95
    keep = np.arange(100_000) % 10 == 3
    assert recall_at_20(idx, vectors, queries, Filters(camera="canon"), keep) >= 0.95
    idx.close()


def test_partitions_hold_partition_rows_vectors_each(tmp_path):
    rng = np.random.default_rng(3)
    vectors = random_unit(rng, 2500, 64)
    small = PhotoIndex(
        tmp_path / "small", IndexSettings(vector_dim=64, ann_threshold=2000, partition_rows=1000)
    )
    fill(small, vectors)
    small.maintain()
    assert small.meta["ann_partitions"] == 3  # ceil(2500 / 1000)
    small.close()
    assert IndexSettings().partition_rows == 8192  # LanceDB joins partitions under 2,048


def test_a_filtered_search_probes_on_until_it_has_enough_matches(tmp_path):
    """Two probes of 40 partitions see ~5% of the photos; a filter matching a
    handful must still find every one of them, without a count or a flat scan."""
    rng = np.random.default_rng(4)
    vectors = random_unit(rng, 2500, 64)
    idx = PhotoIndex(
        tmp_path / "index",
        IndexSettings(vector_dim=64, ann_threshold=2000, ann_partitions=40, nprobes=2),
    )
    fill(idx, vectors)
    idx.maintain()
    assert idx.meta["ann_partitions"] == 40
    counted: list[str | None] = []
    real_count = idx.count
    idx.count = lambda where=None: counted.append(where) or real_count(where)  # type: ignore[method-assign]

    for q in random_unit(rng, 5, 64):
        one = idx.search(q, None, Filters(path="d7/7.jpg"), 20)
        ten = idx.search(q, None, Filters(path="d7/1?7.jpg"), 20)
        assert [h.id for h in one] == [7]
        assert {h.id for h in ten} == set(range(107, 198, 10))
    assert counted == []
    idx.close()
