"""Leave-one-out retrieval over one set of images: precision@1 and mAP@R.

Every image queries all the others (itself excluded). For a query with R other images of its
identity, mAP@R = mean over queries of (1/R) * sum_{k<=R, hit at k} precision@k, looking at the
top R results only (Musgrave et al., "A Metric Learning Reality Check", 2020, as in
pytorch-metric-learning). Queries with R = 0 (an identity's only image) are left out of both
figures, again as pytorch-metric-learning does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # metrics never import FAISS; the search object is handed in
    from marginface.search.base import Search

_MAX_RESULTS_PER_BATCH = 1 << 22  # bounds the (queries x k) result arrays held at once


def _neighbours_without_self(
    search: Search, embeddings: np.ndarray, queries: np.ndarray, k: int
) -> np.ndarray:
    """Ids (Q, k) of each query's k nearest other images; -1 where fewer were found."""
    _, ids = search.search(embeddings[queries], k + 1)
    is_self = ids == queries[:, None]
    # a query not returned among its own results (ties, approximate search) drops its last one
    is_self[~is_self.any(axis=1), -1] = True
    return ids[~is_self].reshape(len(queries), ids.shape[1] - 1)


def retrieval_metrics(
    embeddings: np.ndarray, labels: np.ndarray, search: Search
) -> dict[str, float | None]:
    """{"precision@1", "map@r"} of leave-one-out k-NN search over all images, fractions in [0, 1]."""
    embeddings = np.asarray(embeddings)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(
            f"embeddings (N, D) and labels (N,) must match, got {embeddings.shape} and {labels.shape}"
        )
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    relevant = counts[inverse] - 1  # R: other images of each query's identity
    queries = np.flatnonzero(relevant > 0)
    if len(queries) == 0:
        raise ValueError("retrieval needs an identity with at least 2 images; every identity has 1")
    search.build(embeddings)
    # batch queries by R so that each batch asks for about as many results as it needs
    queries = queries[np.argsort(relevant[queries], kind="stable")]
    precision_at_1 = np.empty(len(queries))
    average_precision = np.empty(len(queries))
    lo = 0
    while lo < len(queries):
        k = int(relevant[queries[lo]])
        hi = lo + 1
        while hi < len(queries):
            k_next = int(relevant[queries[hi]])
            if (hi + 1 - lo) * (k_next + 1) > _MAX_RESULTS_PER_BATCH:
                break
            k, hi = k_next, hi + 1
        batch = queries[lo:hi]
        ids = _neighbours_without_self(search, embeddings, batch, k)
        r = relevant[batch]
        hit = (ids >= 0) & (labels[np.clip(ids, 0, None)] == labels[batch][:, None])
        hit &= np.arange(ids.shape[1]) < r[:, None]  # only the top R results count
        precision = np.cumsum(hit, axis=1) / np.arange(1, ids.shape[1] + 1)
        precision_at_1[lo:hi] = hit[:, 0]
        average_precision[lo:hi] = (precision * hit).sum(axis=1) / r
        lo = hi
    return {
        "precision@1": float(precision_at_1.mean()),
        "map@r": float(average_precision.mean()),
    }
