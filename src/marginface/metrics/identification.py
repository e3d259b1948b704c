"""Open-set identification (1:N, IJB-C style): rank-k and DIR@FPIR against a gallery.

Rank-k = share of mated probes whose mate is among the top k gallery entries.
FPIR(t) = share of non-mated probes whose best gallery score is > t.
DIR(t) (= TPIR) = share of mated probes whose mate is ranked first AND scores > t.
All rates are fractions in [0, 1]; scores are cosine similarities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from marginface.metrics.verification import rate_key, threshold_at_far

if TYPE_CHECKING:  # metrics never import FAISS; the search object is handed in
    from marginface.search.base import Search


@dataclass(frozen=True)
class GalleryProbeSplit:
    """Image indices: one gallery image per enrolled identity, mated and non-mated probes."""

    gallery: np.ndarray  # (G,) one image of each enrolled identity, ordered by label
    mated: np.ndarray  # (M,) the other images of enrolled identities
    nonmated: np.ndarray  # (U,) every image of the identities left out of the gallery


def split_gallery_probes(
    labels: np.ndarray, seed: int = 0, gallery_fraction: float = 0.5
) -> GalleryProbeSplit:
    """Enrol round(gallery_fraction * identities) random identities; deterministic by seed.

    Each enrolled identity's gallery template is one of its images chosen at random (a single
    image, not a mean of several: the hardest and most common protocol for small sets). At least
    one identity is enrolled and at least one left out.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {labels.shape}")
    if not 0.0 < gallery_fraction < 1.0:
        raise ValueError(f"gallery_fraction must lie in (0, 1), got {gallery_fraction}")
    identities = np.unique(labels)
    if len(identities) < 2:
        raise ValueError(
            f"open-set identification needs at least 2 identities (one enrolled, one not), "
            f"got {len(identities)}"
        )
    rng = np.random.default_rng(seed)
    n_enrolled = min(max(round(gallery_fraction * len(identities)), 1), len(identities) - 1)
    enrolled = np.isin(labels, rng.choice(identities, size=n_enrolled, replace=False))
    # one random image per enrolled identity: the smallest random key within each identity
    key = rng.random(len(labels))
    candidates = np.flatnonzero(enrolled)
    candidates = candidates[np.lexsort((key[candidates], labels[candidates]))]
    first = np.concatenate(([True], labels[candidates][1:] != labels[candidates][:-1]))
    gallery = candidates[first]
    is_gallery = np.zeros(len(labels), dtype=bool)
    is_gallery[gallery] = True
    return GalleryProbeSplit(
        gallery=gallery,
        mated=np.flatnonzero(enrolled & ~is_gallery),
        nonmated=np.flatnonzero(~enrolled),
    )


def identification_metrics(
    embeddings: np.ndarray,
    labels: np.ndarray,
    search: Search,
    seed: int = 0,
    ranks: Sequence[int] = (1, 5),
    fpirs: Sequence[float] = (1e-1, 1e-2),
    gallery_fraction: float = 0.5,
    distractors: np.ndarray | None = None,
) -> dict[str, float | None]:
    """rank{k} for k in ranks and dir@fpir=f for f in fpirs, on split_gallery_probes(labels, seed).

    `search` is built on the gallery. With fewer gallery entries than k, rank-k counts a mate
    found anywhere. DIR@FPIR=f uses the lowest threshold whose FPIR <= f (as TAR@FAR does) and is
    None where f * n_nonmated < 1. `distractors` (K, D): embeddings of K identities that are no
    probe's mate, enrolled in the gallery beside it (MegaFace-style); they can only take rank 1
    from a mate and raise the best non-mated score.
    """
    embeddings = np.asarray(embeddings)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(
            f"embeddings (N, D) and labels (N,) must match, got {embeddings.shape} and {labels.shape}"
        )
    if min(ranks, default=1) < 1:
        raise ValueError(f"ranks must be >= 1, got {tuple(ranks)}")
    split = split_gallery_probes(labels, seed, gallery_fraction)
    if len(split.mated) == 0:
        raise ValueError(
            "no mated probes: no enrolled identity has a second image; identification needs "
            "identities with at least 2 images"
        )
    probes = np.concatenate((split.mated, split.nonmated))
    gallery = embeddings[split.gallery]
    n_enrolled = len(gallery)
    if distractors is not None and len(distractors):
        distractors = np.asarray(distractors, dtype=gallery.dtype)
        if distractors.ndim != 2 or distractors.shape[1] != gallery.shape[1]:
            raise ValueError(
                f"distractors must be (K, {gallery.shape[1]}) like the embeddings, got {distractors.shape}"
            )
        gallery = np.concatenate((gallery, distractors))
    search.build(gallery)
    scores, ids = search.search(embeddings[probes], max(ranks, default=1))
    n_mated = len(split.mated)
    mine = ids[:n_mated]
    # a hit is an enrolled identity's entry (not a distractor, not -1: nothing found) with the label
    enrolled = (mine >= 0) & (mine < n_enrolled)
    found = labels[split.gallery][np.clip(mine, 0, n_enrolled - 1)]
    hit = enrolled & (found == labels[split.mated][:, None])
    # index of the mate in each result list, len(row) where it was not returned
    mate_rank = np.where(hit.any(axis=1), np.argmax(hit, axis=1), hit.shape[1])
    out: dict[str, float | None] = {}
    for k in ranks:
        out[f"rank{k}"] = float(np.mean(mate_rank < k))
    best_nonmated = scores[n_mated:, 0].astype(np.float64)
    first_score = scores[:n_mated, 0].astype(np.float64)
    for fpir in fpirs:
        t = threshold_at_far(best_nonmated, fpir)
        key = rate_key("dir@fpir", fpir)
        out[key] = None if t is None else float(np.mean((mate_rank == 0) & (first_score > t)))
    return out
