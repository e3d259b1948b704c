"""Exact search: every query is compared with every indexed vector."""

from __future__ import annotations

import faiss
import numpy as np

from marginface.search.base import FaissSearch


class FlatSearch(FaissSearch):
    """Exact cosine k-NN (faiss.IndexFlatIP); the default and the reference for the others."""

    def _new_index(self, vectors: np.ndarray) -> faiss.Index:
        return faiss.IndexFlatIP(vectors.shape[1])
