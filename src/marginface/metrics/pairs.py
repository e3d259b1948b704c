"""Verification pairs of images (i < j) and their cosine scores."""

from __future__ import annotations

import numpy as np


def _labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {labels.shape}")
    return labels


def n_pairs(n: int) -> int:
    """Number of unordered pairs of n images: n (n - 1) / 2."""
    return n * (n - 1) // 2


def all_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j as (i int64, j int64, issame bool), ordered by i then j."""
    labels = _labels(labels)
    i, j = np.triu_indices(len(labels), k=1)
    i, j = i.astype(np.int64), j.astype(np.int64)
    return i, j, labels[i] == labels[j]


def genuine_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair i < j of images with equal labels as (i, j) int64, ordered by i then j."""
    labels = _labels(labels)
    order = np.argsort(labels, kind="stable")
    _, first, counts = np.unique(labels[order], return_index=True, return_counts=True)
    # the sorted position p pairs with every later position of its identity's block
    block_end = np.repeat(first + counts, counts)
    partners = block_end - np.arange(len(labels)) - 1
    total = int(partners.sum())
    p = np.repeat(np.arange(len(labels)), partners)
    offset = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    a, b = order[p], order[p + 1 + offset]
    i, j = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    keep = np.lexsort((j, i))
    return i[keep], j[keep]


def _sample_impostors(
    labels: np.ndarray, count: int, n_impostor: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = len(labels)
    if n_pairs(n) <= max(4 * count, 1 << 22):
        i, j, same = all_pairs(labels)
        pick = rng.choice(n_impostor, size=count, replace=False)
        return i[~same][pick], j[~same][pick]
    # many more pairs than wanted: draw uniform random pairs and drop genuine ones and repeats
    codes = np.empty(0, dtype=np.int64)
    for _ in range(100):
        draw = int(2 * (count - len(codes)) * n_pairs(n) / n_impostor) + 16
        a = rng.integers(0, n, size=draw)
        b = rng.integers(0, n, size=draw)
        ok = (a != b) & (labels[a] != labels[b])
        i, j = np.minimum(a, b)[ok], np.maximum(a, b)[ok]
        codes = np.unique(np.concatenate((codes, i * n + j)))
        if len(codes) >= count:
            codes = rng.choice(codes, size=count, replace=False)
            return codes // n, codes % n
    raise RuntimeError(f"could not sample {count} impostor pairs from {n} images")


def sampled_pairs(
    labels: np.ndarray, max_pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most `max_pairs` pairs i < j as (i, j, issame), ordered by i then j; deterministic by seed.

    All genuine pairs are kept when they fill at most half of max_pairs; otherwise half of
    max_pairs are drawn from them uniformly. The rest of the budget goes to impostor pairs drawn
    uniformly without replacement (all of them when there are fewer).
    """
    labels = _labels(labels)
    if max_pairs < 2:
        raise ValueError(
            f"max_pairs must be at least 2 (one genuine, one impostor), got {max_pairs}"
        )
    rng = np.random.default_rng(seed)
    gi, gj = genuine_pairs(labels)
    n_impostor = n_pairs(len(labels)) - len(gi)
    if len(gi) > max_pairs // 2:
        pick = np.sort(rng.choice(len(gi), size=max_pairs // 2, replace=False))
        gi, gj = gi[pick], gj[pick]
    count = min(max_pairs - len(gi), n_impostor)
    ii, ij = _sample_impostors(labels, count, n_impostor, rng)
    i = np.concatenate((gi, ii)).astype(np.int64)
    j = np.concatenate((gj, ij)).astype(np.int64)
    keep = np.lexsort((j, i))
    i, j = i[keep], j[keep]
    return i, j, labels[i] == labels[j]


def pairs_for(
    labels: np.ndarray, max_pairs: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs when there are at most max_pairs of them (or max_pairs is None), else sampled_pairs."""
    labels = _labels(labels)
    if max_pairs is None or n_pairs(len(labels)) <= max_pairs:
        return all_pairs(labels)
    return sampled_pairs(labels, max_pairs, seed)


def _scores_by_rows(e: np.ndarray, i: np.ndarray, j: np.ndarray, out: np.ndarray) -> None:
    # when pairs cover much of the N x N matrix, a matrix product per block of rows beats
    # gathering 2 x D floats per pair
    order = None if (i[1:] >= i[:-1]).all() else np.argsort(i, kind="stable")
    si, sj = (i, j) if order is None else (i[order], j[order])
    rows = max(1, (1 << 24) // len(e))
    starts = np.searchsorted(si, np.arange(0, len(e) + rows, rows))
    for b, r0 in enumerate(range(0, len(e), rows)):
        lo, hi = starts[b], starts[b + 1]
        if lo == hi:
            continue
        block = e[r0 : r0 + rows] @ e.T
        values = block[si[lo:hi] - r0, sj[lo:hi]]
        if order is None:
            out[lo:hi] = values
        else:
            out[order[lo:hi]] = values


def unit_rows(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    """float32 (N, D) rows of `x` at unit L2 norm; ValueError naming `name` for other shapes or zero rows."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} rows {np.flatnonzero(norms[:, 0] == 0)[:5]} have zero norm")
    return x / norms


def pair_scores(
    embeddings: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """Cosine similarity (float32, in [-1, 1]) of rows i[k] and j[k] of `embeddings` (N, D).

    Rows are L2-normalised first. Many pairs (at least N^2 / 16) are read off blocks of the
    Gram matrix; few are scored `chunk` at a time (default 2**24 / D) to bound memory.
    """
    e = unit_rows(embeddings)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError(f"i and j must be 1-D of one length, got {i.shape} and {j.shape}")
    out = np.empty(len(i), dtype=np.float32)
    if chunk is None and len(i) > 0 and 16 * len(i) >= len(e) ** 2:
        _scores_by_rows(e, i, j, out)
    else:
        chunk = chunk or max(1, (1 << 24) // max(1, e.shape[1]))
        for lo in range(0, len(i), chunk):
            a, b = e[i[lo : lo + chunk]], e[j[lo : lo + chunk]]
            out[lo : lo + chunk] = np.einsum("nd,nd->n", a, b)
    return np.clip(out, -1.0, 1.0, out=out)
