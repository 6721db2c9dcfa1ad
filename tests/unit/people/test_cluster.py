from __future__ import annotations

import numpy as np

from photovault.people.cluster import as_matrix, dbscan, metric_for_model, pair_scores, pairwise


def blobs(seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16)) * 3
    points, truth = [], []
    for label, c in enumerate(centres):
        for _ in range(5):
            points.append(c + rng.normal(scale=0.05, size=16))
            truth.append(label)
    points.append(np.full(16, 50.0))  # an outlier
    truth.append(99)
    return np.asarray(points, dtype=np.float32), truth


def test_dbscan_finds_separated_groups_and_leaves_an_outlier_as_noise():
    x, truth = blobs()
    labels = dbscan(as_matrix(x, "euclidean"), eps=0.5, metric="euclidean")
    assert labels[-1] == -1
    assert len(set(labels[:-1])) == 3
    assert pair_scores(truth, labels) == (1.0, 1.0)


def test_dbscan_numbers_clusters_in_order_of_their_first_face():
    x, _ = blobs()
    labels = dbscan(as_matrix(x, "euclidean"), eps=0.5, metric="euclidean")
    assert labels[:15] == [0] * 5 + [1] * 5 + [2] * 5


def test_two_faces_alone_are_not_dense_enough_to_be_a_cluster():
    x = np.asarray([[0.0, 0.0], [0.1, 0.0]], dtype=np.float32)
    assert dbscan(x, eps=0.5, metric="euclidean") == [-1, -1]


def test_cosine_distance_ignores_vector_length():
    x = as_matrix([[1.0, 0.0], [5.0, 0.0], [0.0, 2.0]], "cosine")
    d = pairwise(x, x, "cosine")
    assert abs(d[0, 1]) < 1e-6 and abs(d[0, 2] - 1.0) < 1e-6


def test_blockwise_distances_match_a_direct_computation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2100, 8)).astype(np.float32)
    d = pairwise(a, a[:7], "euclidean")
    direct = np.linalg.norm(a[:, None, :] - a[None, :7, :], axis=2)
    assert np.allclose(d, direct, atol=1e-3)


def test_dlib_uses_euclidean_and_deepface_models_cosine():
    assert metric_for_model("Dlib") == "euclidean"
    assert metric_for_model("ArcFace") == "cosine"


def test_pair_scores_count_false_merges_against_precision_and_splits_against_recall():
    assert pair_scores(["a", "a", "b"], [0, 0, 0]) == (1 / 3, 1.0)
    assert pair_scores(["a", "a", "b"], [0, 1, -1]) == (1.0, 0.0)
