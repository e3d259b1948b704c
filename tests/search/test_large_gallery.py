"""Approximate searches built in batches from a memory-mapped gallery, against exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import marginface.search.batched as batched
from marginface.search import FlatSearch, IVFPQSearch, make_search
from marginface.search.batched import build_in_batches, open_embeddings, recall_at_1

CONF = Path(__file__).resolve().parents[2] / "conf" / "search"
IDS, PER_ID, DIM = 2000, 5, 64
# small enough to be quick, large enough that every index is trained and batched
SMALL = {"train_size": 4000, "batch_size": 4096, "num_threads": 1}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """(path of a 10,000 x 64 .npy gallery of 2,000 identities, 300 probes, exact search over it)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(IDS, DIM))
    images = np.repeat(centres, PER_ID, axis=0) + 0.5 * rng.normal(size=(IDS * PER_ID, DIM))
    path = tmp_path_factory.mktemp("gallery") / "embeddings.npy"
    np.save(path, images.astype(np.float32))
    probes = centres[rng.choice(IDS, 300)] + 0.5 * rng.normal(size=(300, DIM))
    exact = FlatSearch(num_threads=1)
    exact.build(np.load(path))
    return path, probes.astype(np.float32), exact


def ivfpq(**params) -> IVFPQSearch:
    cfg = OmegaConf.load(CONF / "ivfpq.yaml")
    return instantiate(cfg, **{**SMALL, **params})


def test_ivfpq_from_a_memory_map_reaches_the_configured_recall(gallery, monkeypatch):
    path, probes, exact = gallery
    floor = OmegaConf.load(CONF / "ivfpq.yaml").min_recall
    rows_seen = []
    normalise = batched.as_unit_rows
    monkeypatch.setattr(
        batched, "as_unit_rows", lambda x, what: rows_seen.append(len(x)) or normalise(x, what)
    )
    search = ivfpq()
    search.build(path)
    assert isinstance(search._source, np.memmap)  # read from disk, never loaded whole
    assert search.ntotal == IDS * PER_ID
    # the training sample, then batches of at most batch_size rows
    assert rows_seen[0] == 4000 and max(rows_seen[1:]) == 4096
    assert sum(rows_seen[1:]) == IDS * PER_ID
    assert search.build_recall >= floor
    monkeypatch.undo()
    assert recall_at_1(search, exact, probes) >= floor

    # rerank is read at search time: the same index by its codes alone. 16 bytes a vector cannot
    # rank near-duplicate images of one identity; exact cosines of the shortlist can
    search.rerank = 0
    assert recall_at_1(search, exact, probes) < floor
    search.rerank = 32
    scores, ids = search.search(probes, 5)
    assert ids.shape == (len(probes), 5) and (ids >= 0).all()
    assert (np.diff(scores, axis=1) <= 0).all()
    vectors = np.load(path)[ids]
    by_hand = np.einsum(
        "qd,qkd->qk",
        probes / np.linalg.norm(probes, axis=1, keepdims=True),
        vectors / np.linalg.norm(vectors, axis=2, keepdims=True),
    )
    np.testing.assert_allclose(scores, by_hand, atol=1e-5)


@pytest.mark.parametrize("name", ["flat", "ivf", "hnsw"])
def test_every_search_builds_in_batches_from_disk(gallery, name):
    path, probes, exact = gallery
    params = {"ef_construction": 64} if name == "hnsw" else {}
    search = make_search(name, num_threads=1, **params)
    build_in_batches(search, path, batch_size=4096, train_size=4000)
    assert search.ntotal == IDS * PER_ID
    recall = recall_at_1(search, exact, probes)
    assert recall == 1.0 if name == "flat" else recall >= 0.9


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="use search=flat"):
        ivfpq().build(np.random.default_rng(0).normal(size=(100, 16)))
    with pytest.raises(ValueError, match="m to divide"):
        ivfpq(m=5).build(np.random.default_rng(0).normal(size=(400, 16)))
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(ValueError, match="2-D"):
        open_embeddings(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="nbits"):
        IVFPQSearch(nbits=0)
