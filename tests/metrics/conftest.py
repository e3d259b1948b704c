"""A brute-force numpy search for metric tests: the metrics see only the Search interface."""

from __future__ import annotations

import numpy as np
import pytest


class BruteForceSearch:
    """Exact cosine k-NN by a full similarity matrix and a stable sort (ties: lower id first)."""

    builds = 0

    def build(self, embeddings: np.ndarray) -> None:
        e = np.asarray(embeddings, dtype=np.float64)
        self.vectors = e / np.linalg.norm(e, axis=1, keepdims=True)
        BruteForceSearch.builds += 1

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float64)
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ self.vectors.T
        ids = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, len(self.vectors))]
        return np.take_along_axis(sims, ids, axis=1).astype(np.float32), ids.astype(np.int64)


@pytest.fixture
def brute_search() -> type[BruteForceSearch]:
    """The class itself: a zero-argument factory of fresh searches."""
    BruteForceSearch.builds = 0
    return BruteForceSearch


def unit_circle(degrees: list[float] | np.ndarray) -> np.ndarray:
    """2-D unit vectors at the given angles (degrees), so cosines are known by hand."""
    rad = np.radians(np.asarray(degrees, dtype=np.float64))
    return np.column_stack((np.cos(rad), np.sin(rad)))


@pytest.fixture
def circle():
    return unit_circle
