"""Score normalisation of verification pairs against a cohort (S-norm, and its adaptive top-k form).

A raw cosine means different things for different images: an image that resembles many faces has
high impostor scores against everyone. S-norm measures that per image, against a cohort of faces
known to be impostors to every open-set image (the training identities), and rescales each pair's
score by both sides' impostor statistics:

    s'(a, b) = ((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2

with mu_x and sd_x the mean and the standard deviation (population, ddof=0) of the cosines of x
against the cohort, or, with `top_k` (adaptive S-norm), against only the k cohort members closest to
x. The result is in units of cohort standard deviations, not a cosine. Auckenthaler et al. 2000
(Z- and T-norm, speaker verification); Sturim and Reynolds 2005 (the adaptive cohort);
Matejka et al. 2017 (AS-norm). docs/metrics.md, "Score normalisation".
"""

from __future__ import annotations

import numpy as np

from marginface.metrics.pairs import unit_rows


def cohort_statistics(
    embeddings: np.ndarray,
    cohort: np.ndarray,
    top_k: int | None = None,
    block_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per row of `embeddings` of its cosines against the `cohort` rows (float64).

    `top_k` None: the whole cohort; else the k highest cosines of each row. Rows are L2-normalised
    here. The (rows, cohort) cosine matrix is made `block_rows` rows at a time.
    """
    e, c = unit_rows(embeddings), unit_rows(cohort, "cohort")
    if e.shape[1] != c.shape[1]:
        raise ValueError(
            f"embeddings have {e.shape[1]} dimensions but the cohort {c.shape[1]}: the cohort must "
            "be embedded (and whitened) as the evaluated images are"
        )
    k = len(c) if top_k is None else int(top_k)
    if k < 2 or k > len(c):
        raise ValueError(
            f"score normalisation needs 2 <= top_k <= cohort size ({len(c)}), got top_k={top_k}"
        )
    mean = np.empty(len(e))
    std = np.empty(len(e))
    for start in range(0, len(e), block_rows):
        z = (e[start : start + block_rows] @ c.T).astype(np.float64)
        if k < len(c):
            z = np.partition(z, len(c) - k, axis=1)[:, len(c) - k :]
        mean[start : start + len(z)] = z.mean(axis=1)
        std[start : start + len(z)] = z.std(axis=1)
    if (std <= 0).any():
        bad = np.flatnonzero(std <= 0)[:5]
        raise ValueError(
            f"rows {bad} have identical cosines to all their cohort members (standard deviation 0): "
            "score normalisation cannot rescale them; use a larger or more varied cohort"
        )
    return mean, std


def normalize_scores(
    scores: np.ndarray, i: np.ndarray, j: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """S-norm of pair scores: ((s - mean[i]) / std[i] + (s - mean[j]) / std[j]) / 2, float32."""
    s = np.asarray(scores, dtype=np.float64)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = 0.5 * ((s - mean[i]) / std[i] + (s - mean[j]) / std[j])
    return out.astype(np.float32)
