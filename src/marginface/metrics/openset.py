"""The "open_set" block of results.json: verification, identification, retrieval, angles, quality."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from marginface.metrics.identification import identification_metrics
from marginface.metrics.pairs import pair_scores, pairs_for
from marginface.metrics.quality import error_versus_reject
from marginface.metrics.retrieval import retrieval_metrics
from marginface.metrics.verification import DEFAULT_FARS, verification_metrics

if TYPE_CHECKING:  # metrics never import FAISS; the search object is handed in
    from marginface.search.base import Search

Pairs = tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]


def check_embeddings(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N, D) embeddings and (N,) labels for open-set evaluation; return unit rows (float32).

    Raises ValueError for NaN/Inf or all-zero rows, fewer than 2 identities, or no identity with
    2 images (then there are no genuine pairs).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or labels.ndim != 1 or len(embeddings) != len(labels):
        raise ValueError(
            f"embeddings must be (N, D) and labels (N,), got {embeddings.shape} and {labels.shape}"
        )
    bad = ~np.isfinite(embeddings).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} embeddings contain NaN or Inf (rows {np.flatnonzero(bad)[:5].tolist()}"
            "...); the model diverged or its input was broken"
        )
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    if (norms == 0).any():
        rows = np.flatnonzero(norms[:, 0] == 0)[:5].tolist()
        raise ValueError(f"embeddings {rows}... are all zeros and have no direction to compare")
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2:
        raise ValueError(
            f"open-set evaluation needs at least 2 identities (impostor pairs, non-mated probes), "
            f"got {len(counts)}; use more open-set identities"
        )
    if counts.max() < 2:
        raise ValueError(
            f"open-set evaluation needs an identity with at least 2 images (genuine pairs), but "
            f"all {len(counts)} identities have 1"
        )
    return embeddings / norms, labels


def _mean_angle_deg(scores: np.ndarray) -> float | None:
    if len(scores) == 0:
        return None
    return float(np.degrees(np.arccos(np.clip(scores.astype(np.float64), -1.0, 1.0))).mean())


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def open_set_metrics(
    embeddings: np.ndarray,
    labels: np.ndarray,
    search_factory: Callable[[], Search],
    seed: int = 0,
    max_pairs: int | None = None,
    fars: Sequence[float] = DEFAULT_FARS,
    pairs: Pairs | None = None,
    n_folds: int = 10,
    ranks: Sequence[int] = (1, 5),
    fpirs: Sequence[float] = (1e-1, 1e-2),
    folds: np.ndarray | None = None,
    quality: np.ndarray | None = None,
    cohort_stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, dict[str, Any] | None], np.ndarray, np.ndarray, np.ndarray]:
    """Return (the results.json "open_set" block, pair scores float32, pair issame bool, pair
    cosines float32: the scores themselves unless they are S-normalised).

    Embeddings are L2-normalised here, so every score is a cosine, unless `cohort_stats` (each
    image's (mean, std) against a cohort, score_norm.cohort_statistics) is given: then the pair
    scores, and every verification and quality figure read from them, are S-normalised
    (score_norm.normalize_scores); identification, retrieval and the angles stay on cosines.
    Pairs are `pairs` ((i, j) or (i, j, issame), issame being checked against labels) or else
    pairs_for(labels, max_pairs, seed); `folds` (a fold id per pair, a protocol's own) replaces the `n_folds` random folds of
    the k-fold accuracy. `search_factory()` must return a fresh search object; identification (gallery split
    by `seed`) and retrieval each build their own. Values are floats or None (not measurable).
    `quality` (one value per image, e.g. the embedding norm before normalising) gives the
    "quality" block, error_versus_reject at FAR 1e-3 (metrics/quality.py); None: the block is null.
    """
    embeddings, labels = check_embeddings(embeddings, labels)
    if quality is not None and np.shape(quality) != (len(embeddings),):
        raise ValueError(
            f"quality must hold one value per embedding ({len(embeddings)}), got shape "
            f"{np.shape(quality)}"
        )
    if pairs is None:
        i, j, issame = pairs_for(labels, max_pairs, seed)
    else:
        i, j = (np.asarray(p, dtype=np.int64) for p in pairs[:2])
        issame = labels[i] == labels[j]
        if len(pairs) == 3 and not np.array_equal(np.asarray(pairs[2], dtype=bool), issame):
            raise ValueError("pairs[2] (issame) disagrees with labels[i] == labels[j]")
    cosines = pair_scores(embeddings, i, j)
    scores = cosines
    if cohort_stats is not None:
        from marginface.metrics.score_norm import normalize_scores

        scores = normalize_scores(cosines, i, j, *cohort_stats)
    block = {
        "verification": verification_metrics(
            scores, issame, fars=fars, n_folds=n_folds, folds=folds
        ),
        "identification": identification_metrics(
            embeddings, labels, search_factory(), seed=seed, ranks=ranks, fpirs=fpirs
        ),
        "retrieval": retrieval_metrics(embeddings, labels, search_factory()),
        "angles": {
            "genuine_mean_deg": _mean_angle_deg(cosines[issame]),
            "impostor_mean_deg": _mean_angle_deg(cosines[~issame]),
        },
    }
    block = _json_safe(block)
    block["quality"] = quality_block(scores, issame, i, j, quality)
    return block, scores, issame, cosines


def quality_block(
    scores: np.ndarray,
    issame: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    quality: np.ndarray | None,
) -> dict[str, Any] | None:
    """The "quality" block: error_versus_reject at FAR 1e-3, JSON-safe; None without `quality`."""
    if quality is None:
        return None
    curve = error_versus_reject(scores, issame, i, j, quality)
    # an infinite threshold (every impostor accepted) is not a number JSON can carry
    curve["threshold"] = _json_safe(curve["threshold"])
    return curve
