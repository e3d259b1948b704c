"""FlatSearch against a numpy top-k in a defined order: score descending, then id ascending."""

from __future__ import annotations

import numpy as np
import pytest

from marginface.search import FlatSearch


def tie_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Rows with +-0.5 on 4 coordinates: unit norm, every dot product a multiple of 0.25, exact
    in float32 whatever the summation order, so ties are real ties for every implementation."""
    x = np.zeros((n, dim), np.float32)
    for row in x:
        row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return x


def numpy_top_k(gallery: np.ndarray, queries: np.ndarray, k: int):
    sims = queries.astype(np.float64) @ gallery.astype(np.float64).T
    every = np.arange(len(gallery))
    ids = np.stack([np.lexsort((every, -row))[:k] for row in sims])
    return np.take_along_axis(sims, ids, axis=1), ids


@pytest.mark.parametrize(
    ("n", "q", "dim", "k"), [(200, 30, 6, 7), (3000, 64, 8, 10), (500, 25, 8, 60), (9, 5, 6, 9)]
)
def test_ties_come_in_score_then_id_order(n, q, dim, k):
    rng = np.random.default_rng(n)
    gallery, queries = tie_vectors(n, dim, rng), tie_vectors(q, dim, rng)
    search = FlatSearch(num_threads=1)
    search.build(gallery)
    scores, ids = search.search(queries, k)
    ref_scores, ref_ids = numpy_top_k(gallery, queries, k)
    if k < n:  # most rows tie at the k-th place: the case the order is defined for
        assert np.mean(ref_scores[:, -1] == np.sort(queries @ gallery.T, axis=1)[:, -k - 1]) > 0.5
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_random_data_gives_the_exact_top_k():
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(5000, 32)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    queries = rng.normal(size=(300, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    search = FlatSearch(num_threads=1)
    search.build(gallery)
    scores, ids = search.search(queries, 10)
    ref_scores, ref_ids = numpy_top_k(gallery, queries, 11)
    # float32 rounding (1e-7) may swap neighbours (or the 10th and 11th) closer than 1e-6: every
    # place apart from its neighbours by more than that must hold the reference's id
    gaps = np.abs(np.diff(ref_scores, axis=1)) > 1e-6
    clear = np.ones((300, 10), bool)
    clear[:, 1:] &= gaps[:, :9]
    clear &= gaps
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(ids[clear], ref_ids[:, :10][clear])
    np.testing.assert_allclose(scores, ref_scores[:, :10], atol=1e-6)
