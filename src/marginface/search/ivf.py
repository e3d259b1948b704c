"""Approximate search in an inverted file: vectors bucketed by their nearest k-means centroid."""

from __future__ import annotations

import math

import faiss
import numpy as np

from marginface.search.base import FaissSearch


class IVFSearch(FaissSearch):
    """Approximate cosine k-NN (faiss.IndexIVFFlat), k-means trained on the indexed vectors.

    nlist: number of buckets (None: round(sqrt(N)), at least 1); nprobe: buckets visited per
    query (nprobe >= nlist makes it exact). Needs N >= nlist vectors to train.
    """

    def __init__(
        self, nlist: int | None = None, nprobe: int = 8, num_threads: int | None = None
    ) -> None:
        super().__init__(num_threads)
        if (nlist is not None and nlist < 1) or nprobe < 1:
            raise ValueError(f"IVFSearch needs nlist >= 1 and nprobe >= 1, got {nlist}, {nprobe}")
        self.nlist = nlist
        self.nprobe = nprobe

    def _new_index(self, vectors: np.ndarray) -> faiss.Index:
        n, d = vectors.shape
        nlist = self.nlist if self.nlist is not None else max(1, round(math.sqrt(n)))
        if n < nlist:
            raise ValueError(
                f"IVFSearch(nlist={nlist}) needs at least {nlist} vectors to train its k-means, "
                f"got {n}; lower nlist (or leave it None for sqrt(N)) or use search=flat"
            )
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # small open sets are normal here; don't warn
        index.train(vectors)
        return index

    def _configure(self, index: faiss.Index) -> None:
        index.nprobe = min(self.nprobe, index.nlist)
