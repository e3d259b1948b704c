"""Build any FAISS search from embeddings on disk, a batch at a time, and measure its recall.

A gallery of millions of embeddings need not fit in memory twice: the rows are read from a
memory-mapped .npy file (np.load(mmap_mode="r")) and normalised and added `batch_size` rows at a
time; a trained index (IVF, IVF-PQ) learns from a random sample of `train_size` rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from marginface.search.base import FaissSearch, as_unit_rows, faiss_threads

log = logging.getLogger(__name__)


def open_embeddings(source: np.ndarray | str | Path) -> np.ndarray:
    """The (N, D) embeddings: a .npy path is memory-mapped read-only, an array is used as it is."""
    array = np.load(source, mmap_mode="r") if isinstance(source, str | Path) else source
    if array.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (N, D), got shape {array.shape}")
    return array


def training_sample(source: np.ndarray, train_size: int | None, seed: int = 0) -> np.ndarray:
    """Up to `train_size` rows of `source` drawn without replacement (all rows when None), unit norm."""
    n = len(source)
    if train_size is None or train_size >= n:
        rows = np.arange(n)
    else:
        # sorted: a memory map reads them front to back
        rows = np.sort(np.random.default_rng(seed).choice(n, size=train_size, replace=False))
    return as_unit_rows(source[rows], "training embeddings")


def build_in_batches(
    search: FaissSearch,
    embeddings: np.ndarray | str | Path,
    batch_size: int = 65536,
    train_size: int | None = 100_000,
    seed: int = 0,
) -> FaissSearch:
    """Index every row of `embeddings` (array or .npy path) into `search`, `batch_size` rows at a time.

    The index is created (and trained, for IVF / IVF-PQ) on `training_sample(train_size)`; row n
    gets id n, as with `search.build`. Returns `search`, ready to search.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    source = open_embeddings(embeddings)
    if len(source) == 0:
        raise ValueError("cannot build a search index from 0 vectors")
    with faiss_threads(search.num_threads):
        index = search._new_index(training_sample(source, train_size, seed))
        for start in range(0, len(source), batch_size):
            index.add(as_unit_rows(source[start : start + batch_size], "embeddings to index"))
    search._index = index
    return search


def recall_at_1(approximate: FaissSearch, exact: FaissSearch, queries: np.ndarray) -> float:
    """Share of queries whose nearest neighbour by `approximate` is the one `exact` finds."""
    if len(queries) == 0:
        raise ValueError("recall needs at least one query")
    found = approximate.search(queries, 1)[1][:, 0]
    truth = exact.search(queries, 1)[1][:, 0]
    return float(np.mean(found == truth))


def self_recall(search: FaissSearch, source: np.ndarray, sample: int, seed: int = 0) -> float:
    """Share of `sample` indexed rows that find themselves first (an index-only recall@1 estimate)."""
    n = len(source)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    found = search.search(np.asarray(source[rows]), 1)[1][:, 0]
    return float(np.mean(found == rows))
