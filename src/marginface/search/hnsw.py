"""Approximate search on a hierarchical navigable small-world graph."""

from __future__ import annotations

import faiss
import numpy as np

from marginface.search.base import FaissSearch


class HNSWSearch(FaissSearch):
    """Approximate cosine k-NN (faiss.IndexHNSWFlat); https://arxiv.org/abs/1603.09320.

    m: graph neighbours per node; ef_construction / ef_search: candidate-list sizes when
    building / searching (larger = better recall, slower). FAISS uses max(ef_search, k).
    """

    def __init__(
        self,
        m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(num_threads)
        if m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError(
                f"HNSWSearch needs m >= 2, ef_construction >= 1, ef_search >= 1; "
                f"got m={m}, ef_construction={ef_construction}, ef_search={ef_search}"
            )
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search

    def _new_index(self, vectors: np.ndarray) -> faiss.Index:
        index = faiss.IndexHNSWFlat(vectors.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _configure(self, index: faiss.Index) -> None:
        index.hnsw.efSearch = self.ef_search
