"""FAISS searches against brute-force numpy top-k, plus the factory, configs and errors."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from marginface.search import (
    FlatSearch,
    HNSWSearch,
    IVFSearch,
    Search,
    faiss_threads,
    make_search,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "search"


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n_ids, per_id, dim, seed, noise=0.5, noise_seed=None):
    """Face-like data: identities are random directions, images are noisy copies."""
    centres = np.random.default_rng(seed).normal(size=(n_ids, dim))
    rng = np.random.default_rng(seed + 1 if noise_seed is None else noise_seed)
    x = np.repeat(centres, per_id, axis=0) + noise * rng.normal(size=(n_ids * per_id, dim))
    return x.astype(np.float32)


def brute_top_k(gallery, queries, k):
    sims = unit(queries.astype(np.float64)) @ unit(gallery.astype(np.float64)).T
    ids = np.argsort(-sims, axis=1)[:, :k]
    return np.take_along_axis(sims, ids, axis=1), ids


def test_flat_equals_brute_force():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(300, 24)) * rng.uniform(0.1, 5, size=(300, 1))
    queries = rng.normal(size=(40, 24))
    search = FlatSearch()
    search.build(gallery)
    scores, ids = search.search(queries, 7)
    ref_scores, ref_ids = brute_top_k(gallery, queries, 7)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_k_larger_than_the_index_is_trimmed():
    x = np.random.default_rng(1).normal(size=(5, 4))
    search = FlatSearch()
    search.build(x)
    scores, ids = search.search(x, 9)
    assert ids.shape == scores.shape == (5, 5)
    assert (ids >= 0).all()
    np.testing.assert_array_equal(ids[:, 0], np.arange(5))  # each vector finds itself first
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-6)


def test_hnsw_recall_at_1():
    # noise 1.0: exact search finds the right identity for ~70% of queries, so the neighbour
    # graph has real work to do (ef_search=1 gets recall ~0.45 here)
    gallery = clustered(400, 5, 32, seed=2, noise=1.0)
    queries = clustered(400, 1, 32, seed=2, noise=1.0, noise_seed=99)  # new images
    exact = FlatSearch()
    exact.build(gallery)
    _, ref = exact.search(queries, 1)
    hnsw = HNSWSearch(m=16, ef_construction=80, ef_search=32)
    hnsw.build(gallery)
    _, ids = hnsw.search(queries, 1)
    assert np.mean(ids[:, 0] == ref[:, 0]) >= 0.9
    hnsw.ef_search = 1  # read at search time: no rebuild needed
    _, ids = hnsw.search(queries, 1)
    assert np.mean(ids[:, 0] == ref[:, 0]) < 0.8


def test_ivf_visiting_every_list_is_exact():
    gallery = clustered(50, 8, 16, seed=3)
    queries = gallery[::7] + 0.05
    ivf = IVFSearch(nlist=10, nprobe=10)
    ivf.build(gallery)
    _, ids = ivf.search(queries, 5)
    np.testing.assert_array_equal(ids, brute_top_k(gallery, queries, 5)[1])


def test_ivf_missing_results_are_minus_one_and_minus_inf():
    gallery = clustered(20, 10, 16, seed=4)
    ivf = IVFSearch(nlist=20, nprobe=1)
    ivf.build(gallery)
    scores, ids = ivf.search(gallery[:3], 200)
    assert (ids == -1).any()
    assert np.isneginf(scores[ids == -1]).all()
    assert np.isfinite(scores[ids >= 0]).all()


def test_ivf_with_too_few_vectors_says_what_to_do():
    with pytest.raises(ValueError, match="at least 64 vectors.*search=flat"):
        IVFSearch(nlist=64).build(np.ones((10, 4)))


def test_errors():
    with pytest.raises(RuntimeError, match="before build"):
        FlatSearch().search(np.ones((1, 3)), 1)
    search = FlatSearch()
    search.build(np.eye(3))
    with pytest.raises(ValueError, match="dimension 4"):
        search.search(np.ones((1, 4)), 1)
    with pytest.raises(ValueError, match="NaN"):
        search.search(np.full((1, 3), np.nan), 1)
    with pytest.raises(ValueError, match="k must be"):
        search.search(np.ones((1, 3)), 0)
    with pytest.raises(ValueError, match="0 vectors"):
        FlatSearch().build(np.ones((0, 3)))


def test_make_search_and_configs():
    assert isinstance(make_search("hnsw", ef_search=64), HNSWSearch)
    with pytest.raises(ValueError, match=r"choose one of \['flat', 'hnsw', 'ivf', 'ivfpq'\]"):
        make_search("annoy")
    for name, cls in (("flat", FlatSearch), ("hnsw", HNSWSearch), ("ivf", IVFSearch)):
        search = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
        assert type(search) is cls and isinstance(search, Search)


def test_thread_limit_is_restored():
    before = faiss.omp_get_max_threads()
    with faiss_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
