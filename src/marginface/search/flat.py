"""Exact search: every query is compared with every indexed vector."""

from __future__ import annotations

import faiss
import numpy as np

from marginface.search.base import FaissSearch, as_unit_rows


class FlatSearch(FaissSearch):
    """Exact cosine k-NN (faiss.IndexFlatIP); the default and the reference for the others.

    FAISS computes the scores with its BLAS GEMM in blocks and keeps a heap per query; it was
    faster than a blocked torch GEMM + topk on the same data (benchmarks/bench_metrics.py).
    Ties have a defined order: higher score first, then the lower id. FAISS's heap picks among
    equal scores at the k-th place arbitrarily, so k + 1 neighbours are asked for: a row whose
    k-th and (k+1)-th scores differ has its k best exactly, only sorted again; a row where they
    are equal (rare outside constructed data) is scored again against every vector and selected
    in that order.
    """

    def _new_index(self, vectors: np.ndarray) -> faiss.Index:
        return faiss.IndexFlatIP(vectors.shape[1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) as FaissSearch.search, ties in the order (score descending, id ascending)."""
        if k < 1:  # checked here too: k + 1 below would hide k = 0
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(int(k), self.ntotal)
        wanted = min(k + 1, self.ntotal)
        scores, ids = super().search(queries, wanted)
        order = np.lexsort((ids, -scores), axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        ids = np.take_along_axis(ids, order, axis=1)
        if wanted > k:
            tied = np.flatnonzero(scores[:, k - 1] == scores[:, k])
            if len(tied):
                self._select_tied(as_unit_rows(queries[tied], "queries"), k, tied, scores, ids)
        return scores[:, :k], ids[:, :k]

    def _select_tied(
        self, queries: np.ndarray, k: int, rows: np.ndarray, scores: np.ndarray, ids: np.ndarray
    ) -> None:
        """Fill `rows` of scores/ids with the k best of every vector, lower id first among ties."""
        vectors = faiss.rev_swig_ptr(self._index.get_xb(), self.ntotal * self._index.d)
        vectors = vectors.reshape(self.ntotal, self._index.d)  # a view of the index's copy
        every = np.arange(self.ntotal)
        for row, query in zip(rows, queries, strict=True):
            full = vectors @ query
            best = np.lexsort((every, -full))[:k]
            scores[row, :k], ids[row, :k] = full[best], best
