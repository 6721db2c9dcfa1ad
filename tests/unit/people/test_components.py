"""The numpy connected components behind face clustering (no scipy in vaultd)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from photovault.people.cluster import _component_minimum, density_labels


def smallest_per_component(size: int, iu: np.ndarray, iv: np.ndarray) -> np.ndarray:
    """The reference: scipy's components, each named by its smallest node."""
    graph = csr_matrix((np.ones(len(iu), dtype=np.int8), (iu, iv)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, size, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(size))
    return smallest[labels]


@pytest.mark.parametrize("seed", range(6))
def test_components_match_scipy_on_random_sparse_graphs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 400))
    edges = int(rng.integers(1, size))
    iu, iv = rng.integers(0, size, edges), rng.integers(0, size, edges)
    assert np.array_equal(_component_minimum(size, iu, iv), smallest_per_component(size, iu, iv))


def test_a_long_shuffled_chain_is_one_component() -> None:
    # The worst case for label propagation: one path through every node in random order.
    order = np.random.default_rng(1).permutation(5000)
    label = _component_minimum(5000, order[:-1], order[1:])
    assert (label == 0).all()


def test_clustering_in_small_blocks_equals_one_block() -> None:
    # Small blocks fold many batches of edges into the running components.
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 8)) * 4
    x = (centres[rng.integers(0, 12, 600)] + rng.normal(scale=0.3, size=(600, 8))).astype(
        np.float32
    )
    whole = density_labels(x, eps=1.0, metric="euclidean", block=4096)
    blocks = density_labels(x, eps=1.0, metric="euclidean", block=16)
    assert len(set(whole.tolist()) - {-1}) >= 10
    assert np.array_equal(whole, blocks)


def test_clustering_does_not_import_scipy() -> None:
    code = (
        "import sys, numpy as np\n"
        "from photovault.people.cluster import density_labels\n"
        "x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)\n"
        "density_labels(x, eps=3.0, metric='euclidean', block=32)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
