"""Approximate search on compressed vectors: an inverted file of product-quantised codes."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import faiss
import numpy as np

from marginface.search.base import FaissSearch, as_unit_rows
from marginface.search.batched import build_in_batches, open_embeddings, self_recall

log = logging.getLogger(__name__)

#: queries re-ranked at a time: their candidates' vectors are (Q, rerank, D) floats
_RERANK_QUERIES = 1024
#: k-means wants this many training vectors per centroid (FAISS warns below it)
_POINTS_PER_CENTROID = 39


class IVFPQSearch(FaissSearch):
    """Approximate cosine k-NN (faiss.IndexIVFPQ) for galleries too large for exact search or memory.

    Each vector is kept as `m` bytes (nbits=8): m sub-vectors, each replaced by the nearest of
    2**nbits learnt centroids (product quantisation, Jegou et al. 2011,
    https://doi.org/10.1109/TPAMI.2010.57), in `nlist` inverted lists of which `nprobe` are scanned
    per query. m (None: the largest divisor of D up to D/4, i.e. >= 4 dimensions a byte) must divide
    the dimension D; nlist None: 4*sqrt(N), at most train_size/39.

    `build` takes an array or a .npy path (memory-mapped): the codebooks are trained on
    `train_size` sampled rows and the rows are added `batch_size` at a time, so the gallery is never
    in memory as floats. After the build, `build_recall` is the share of `recall_sample` indexed rows
    that find themselves first; below `min_recall` a warning says to raise nprobe or m.
    `rerank` > 0: each query takes a shortlist of `rerank` candidates from the codes and orders it by
    the exact cosine of those rows, read back from the array or memory map that was indexed
    (compressed codes cannot tell apart near neighbours of one identity; this reads rerank rows
    a query).
    """

    def __init__(
        self,
        nlist: int | None = None,
        m: int | None = None,
        nbits: int = 8,
        nprobe: int = 16,
        train_size: int | None = 100_000,
        batch_size: int = 65536,
        rerank: int = 0,
        recall_sample: int = 1000,
        min_recall: float | None = None,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(num_threads)
        if (nlist is not None and nlist < 1) or (m is not None and m < 1) or nprobe < 1:
            raise ValueError(
                f"IVFPQSearch needs nlist >= 1, m >= 1 and nprobe >= 1; got nlist={nlist}, m={m}, "
                f"nprobe={nprobe}"
            )
        if not 1 <= nbits <= 16:
            raise ValueError(f"IVFPQSearch needs 1 <= nbits <= 16, got {nbits}")
        if (
            (train_size is not None and train_size < 1)
            or batch_size < 1
            or rerank < 0
            or recall_sample < 0
        ):
            raise ValueError(
                f"IVFPQSearch needs train_size >= 1 (or null), batch_size >= 1, rerank >= 0 and "
                f"recall_sample >= 0; got {train_size}, {batch_size}, {rerank}, {recall_sample}"
            )
        self.nlist, self.m, self.nbits, self.nprobe = nlist, m, nbits, nprobe
        self.train_size, self.batch_size = train_size, batch_size
        self.rerank, self.recall_sample, self.min_recall = rerank, recall_sample, min_recall
        self.build_recall: float | None = None
        self._total: int | None = None
        self._source: np.ndarray | None = None

    def build(self, embeddings: np.ndarray | str | Path) -> None:
        """Index the rows of `embeddings` (N, D), an array or a .npy file, a batch at a time."""
        source = open_embeddings(embeddings)
        self._total = len(source)
        build_in_batches(self, source, self.batch_size, self.train_size)
        # kept for re-ranking: a memory map costs no memory, an array is not copied
        self._source = source
        self.build_recall = None
        if self.recall_sample:
            self.build_recall = self_recall(self, source, self.recall_sample)
            if self.min_recall is not None and self.build_recall < self.min_recall:
                log.warning(
                    "IVFPQSearch: %.3f of indexed vectors find themselves first (min_recall %.3f); "
                    "raise nprobe (now %d) or m (bytes per vector, now %d)",
                    self.build_recall,
                    self.min_recall,
                    self.nprobe,
                    self._index.pq.M,
                )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k by the codes, or with rerank > 0 the best k of a `rerank` shortlist by exact cosine."""
        if not self.rerank or self._source is None:
            return super().search(queries, k)
        scores, ids = super().search(queries, max(k, self.rerank))
        k = min(k, ids.shape[1])
        queries = as_unit_rows(queries, "queries")
        for first in range(0, len(queries), _RERANK_QUERIES):
            block = slice(first, first + _RERANK_QUERIES)
            scores[block], ids[block] = self._rerank(queries[block], ids[block])
        return scores[:, :k], ids[:, :k]

    def _rerank(self, queries: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates `ids` (Q, S) ordered by exact cosine, read back from the indexed rows."""
        rows, where = np.unique(np.maximum(ids, 0), return_inverse=True)
        vectors = as_unit_rows(self._source[rows], "indexed embeddings")  # sorted: sequential reads
        exact = np.einsum("qd,qsd->qs", queries, vectors[where.reshape(ids.shape)])
        exact[ids < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
        return np.take_along_axis(exact, order, axis=1).astype(np.float32), ids

    def _new_index(self, vectors: np.ndarray) -> faiss.Index:
        n, d = vectors.shape
        m = (
            self.m
            if self.m is not None
            else max(k for k in range(1, max(1, d // 4) + 1) if d % k == 0)
        )
        if d % m:
            raise ValueError(f"IVFPQSearch(m={m}) needs m to divide the dimension {d}")
        total = self._total if self._total is not None else n
        nlist = self.nlist
        if nlist is None:
            nlist = max(1, min(round(4 * math.sqrt(total)), n // _POINTS_PER_CENTROID))
        needed = max(nlist, 2**self.nbits)
        if n < needed:
            raise ValueError(
                f"IVFPQSearch(nlist={nlist}, nbits={self.nbits}) needs at least {needed} training "
                f"vectors, got {n}; lower nbits / nlist, raise train_size, or use search=flat "
                f"(or ivf) for a gallery this small"
            )
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQ(quantizer, d, nlist, m, self.nbits, faiss.METRIC_INNER_PRODUCT)
        # small galleries are normal in tests and the open set: no warnings from either k-means
        index.cp.min_points_per_centroid = 1
        index.pq.cp.min_points_per_centroid = 1
        index.train(vectors)
        return index

    def _configure(self, index: faiss.Index) -> None:
        index.nprobe = min(self.nprobe, index.nlist)
