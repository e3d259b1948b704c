"""Quality from the feature norm: error-versus-reject curves (the premise of MagFace and AdaFace).

If the embedding norm carries image quality, rejecting the lowest-norm images should remove the
hard genuine pairs first, and the false non-match rate (FNMR) at a fixed threshold should fall as
more images are rejected. The threshold is set once, at the requested FAR on all impostor pairs,
before any rejection (the error-versus-reject characteristic of Grother and Tabassi, IEEE TPAMI
2007, as used by the MagFace paper, https://arxiv.org/abs/2103.06627). A pair is accepted when its
score is strictly greater than the threshold, as in metrics/verification.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marginface.metrics.verification import threshold_at_far

DEFAULT_REJECT = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def error_versus_reject(
    scores: np.ndarray,
    issame: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    quality: np.ndarray,
    far: float = 1e-3,
    reject: Sequence[float] = DEFAULT_REJECT,
) -> dict:
    """FNMR at the all-pairs threshold for FAR `far`, after rejecting the lowest-quality images.

    scores, issame, i, j: one entry per pair (images i[k] and j[k]); quality: one value per image
    (e.g. the embedding norm). For each fraction r in `reject`, the floor(r * n_images) images of
    lowest quality are dropped (ties: the lower index first), with every pair that holds one, and
    FNMR is the share of the remaining genuine pairs scoring <= the threshold. Returns
    {"far", "threshold", "reject", "fnmr", "genuine_pairs"} (lists aligned with `reject`); FNMR is
    None where no genuine pair remains or the FAR is not measurable (far * impostors < 1).
    """
    scores, issame = np.asarray(scores, dtype=np.float64), np.asarray(issame, dtype=bool)
    i, j, quality = np.asarray(i), np.asarray(j), np.asarray(quality, dtype=np.float64)
    if not (scores.shape == issame.shape == i.shape == j.shape) or scores.ndim != 1:
        raise ValueError(
            f"scores, issame, i and j must be 1-D and of one length (one entry per pair), got "
            f"shapes {scores.shape}, {issame.shape}, {i.shape}, {j.shape}"
        )
    if quality.ndim != 1 or (len(i) and max(i.max(), j.max()) >= len(quality)):
        raise ValueError(
            f"quality must hold one value per image, indexed by i and j; got shape "
            f"{quality.shape} for image indices up to {max(i.max(), j.max()) if len(i) else -1}"
        )
    bad = [r for r in reject if not 0.0 <= r < 1.0]
    if bad:
        raise ValueError(f"reject fractions must lie in [0, 1), got {bad}")
    threshold = threshold_at_far(scores[~issame], far)
    # rank of each image from the lowest quality up (stable: ties by index)
    rank = np.empty(len(quality), dtype=np.int64)
    rank[np.argsort(quality, kind="stable")] = np.arange(len(quality))
    pair_rank = np.minimum(rank[i], rank[j])  # a pair goes with its first rejected image
    fnmr, genuine = [], []
    for r in reject:
        # the slack keeps 2/6 * 6 (= 1.9999999999999998) at two images
        dropped = int(np.floor(r * len(quality) * (1.0 + 1e-12)))
        kept = issame & (pair_rank >= dropped)
        count = int(kept.sum())
        genuine.append(count)
        if threshold is None or count == 0:
            fnmr.append(None)
        else:
            fnmr.append(float((scores[kept] <= threshold).sum() / count))
    return {
        "far": far,
        "threshold": threshold,
        "reject": [float(r) for r in reject],
        "fnmr": fnmr,
        "genuine_pairs": genuine,
    }
