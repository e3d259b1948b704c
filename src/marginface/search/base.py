"""The search interface the metrics rely on, and the FAISS base class that implements it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import faiss
import numpy as np


@runtime_checkable
class Search(Protocol):
    """k-nearest-neighbour search by cosine similarity over a fixed set of vectors."""

    def build(self, embeddings: np.ndarray) -> None:
        """Index the rows of `embeddings` (N, D); row n gets id n."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, min(k, N)) float32 best first, ids int64); id -1 / score -inf: not found."""


def default_num_threads() -> int:
    """FAISS threads to use when none is given: the cores this process may run on, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


@contextmanager
def faiss_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with FAISS (OpenMP) limited to `num_threads`, then restore the previous limit."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(num_threads or default_num_threads())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def as_unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Return a C-contiguous float32 copy of `x` (N, D) with rows scaled to unit L2 norm."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or Inf values; check the model that produced them")
    faiss.normalize_L2(x)  # rows of zeros stay zero (score 0 against everything)
    return x


class FaissSearch:
    """Base class: inner product of L2-normalised vectors (= cosine) with one FAISS index.

    Subclasses override `_new_index(vectors)`, returning an index that `add` can be called on,
    and `_configure(index)` for search-time parameters (read at every search).
    Vectors and queries are L2-normalised on the way in, so scores are cosines in [-1, 1].
    Asking for k > N neighbours returns N columns (no padding). Approximate indexes may find
    fewer than k neighbours for a query: those slots hold id -1 and score -inf.
    `num_threads` caps FAISS's OpenMP threads during build/search (None: default_num_threads()).
    """

    def __init__(self, num_threads: int | None = None) -> None:
        self.num_threads = num_threads
        self._index: faiss.Index | None = None

    def _new_index(self, vectors: np.ndarray) -> faiss.Index:
        raise NotImplementedError

    def _configure(self, index: faiss.Index) -> None:
        """Apply search-time parameters before each search, so they may change after build."""

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors (0 before build)."""
        return 0 if self._index is None else int(self._index.ntotal)

    def build(self, embeddings: np.ndarray) -> None:
        """Index the rows of `embeddings` (N, D), replacing whatever was indexed before."""
        vectors = as_unit_rows(embeddings, "embeddings to index")
        if len(vectors) == 0:
            raise ValueError("cannot build a search index from 0 vectors")
        with faiss_threads(self.num_threads):
            index = self._new_index(vectors)
            index.add(vectors)
        self._index = index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores (Q, min(k, N)) float32 best first, ids (Q, min(k, N)) int64)."""
        if self._index is None:
            raise RuntimeError(f"{type(self).__name__}.search called before build()")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = as_unit_rows(queries, "queries")
        if queries.shape[1] != self._index.d:
            raise ValueError(
                f"queries have dimension {queries.shape[1]}, the index holds dimension {self._index.d}"
            )
        k = min(int(k), self.ntotal)
        self._configure(self._index)
        with faiss_threads(self.num_threads):
            scores, ids = self._index.search(queries, k)
        scores = np.asarray(scores, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        scores[ids < 0] = -np.inf
        return scores, ids

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
